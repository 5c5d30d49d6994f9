"""test_docs: the documentation and the example files in etc/ agree with the code.

Builds nothing and needs no PostgreSQL: it reads README, doc/ and etc/, runs the ./pgtally that
is there (or PGTALLY_BIN) with --check, --help and --version, and uses promtool and
systemd-analyze when they are installed. Checks:
  - README opens with its paragraph and the two set-up commands, and links to every doc/*.md,
    all of which exist (and so do the etc/ files it names);
  - relative links between the docs point at files that exist;
  - etc/pgtally.ini, and the ini inside etc/kubernetes-sidecar.yaml, pass `pgtally --check`;
  - etc/grafana-dashboard.json is valid JSON whose every pgtally_* metric is exported by
    src/metrics.c;
  - etc/prometheus.yml passes `promtool check config`;
  - `pgtally --help` lists every flag of the OPTIONS section of doc/pgtally.1.md;
  - doc/pgtally.ini.5.md documents exactly the options of doc/config.md, with the same
    defaults and the same restart flag (test/unit/test_config.c ties config.md to the code);
  - the Kubernetes example probes /healthz and /readyz on the port metrics_listen uses;
  - etc/pgtally.service passes `systemd-analyze verify`.
"""

import json
import os
import re
import shutil
import subprocess

import pytest

from harness import util

ROOT = util.REPO_ROOT
DOC = os.path.join(ROOT, 'doc')
ETC = os.path.join(ROOT, 'etc')
PGTALLY = os.environ.get('PGTALLY_BIN') or os.path.join(ROOT, 'pgtally')
PROMTOOL = '/usr/bin/promtool'
HISTOGRAM_SUFFIXES = ('_bucket', '_sum', '_count')


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding='utf-8') as f:
        return f.read()


def need_pgtally():
    if not os.access(PGTALLY, os.X_OK):
        pytest.skip('%s is not built (make)' % PGTALLY)
    return PGTALLY


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=60, **kw)


def pgtally_check(path):
    """Run pgtally --check on path and fail with its report unless it says ok."""
    res = run([need_pgtally(), '--check', path], cwd=ROOT)
    assert res.returncode == 0, '%s --check %s:\n%s' % (PGTALLY, path, res.stdout)
    assert res.stdout.strip().splitlines()[-1] == 'ok', res.stdout


def section(markdown, title):
    """The text of the level-1 section `# title` of a Markdown file, up to the next one."""
    m = re.search(r'^# %s\s*$(.*?)(?=^# |\Z)' % re.escape(title), markdown, re.M | re.S)
    assert m, 'no "# %s" section' % title
    return m.group(1)


def metrics_exported():
    """Every pgtally_* name that src/metrics.c writes (the N+1 ones contain a digit)."""
    return set(re.findall(r'pgtally_[a-z0-9_]+', read('src', 'metrics.c')))


# ---------------------------------------------------------------------- README and links


def test_readme_opening_and_setup_commands():
    text = read('README')
    lines = text.splitlines()
    assert lines[0] == 'pgtally' and set(lines[1]) == {'='}, lines[:2]
    first_para = text.split('\n\n')[1]
    assert first_para.startswith('pgtally is ') and 'PgBouncer' in first_para, first_para
    # The first code block: exactly `make run` and `make check`.
    block = re.search(r'\n\n((?:    \S.*\n)+)', text).group(1)
    commands = [line.split('#')[0].strip() for line in block.splitlines()]
    assert commands == ['make run', 'make check'], commands


def test_readme_links_every_doc_and_they_exist():
    text = read('README')
    linked = set(re.findall(r'\bdoc/[\w.-]+\.md\b', text))
    assert linked, 'README links no doc/*.md'
    missing = sorted(p for p in linked if not os.path.isfile(os.path.join(ROOT, p)))
    assert not missing, 'README links docs that do not exist: %s' % missing
    present = {'doc/' + f for f in os.listdir(DOC) if f.endswith('.md')}
    unlinked = sorted(present - linked)
    assert not unlinked, 'docs that README does not link: %s' % unlinked


def test_readme_etc_files_exist():
    named = set(re.findall(r'\betc/[\w.-]+\.\w+', read('README')))
    assert {'etc/pgtally.ini', 'etc/pgtally.service', 'etc/prometheus.yml',
            'etc/grafana-dashboard.json', 'etc/kubernetes-sidecar.yaml'} <= named, named
    missing = sorted(p for p in named if not os.path.isfile(os.path.join(ROOT, p)))
    assert not missing, missing


def test_relative_links_between_docs_exist():
    bad = []
    for name in sorted(os.listdir(DOC)):
        if not name.endswith('.md'):
            continue
        text = read('doc', name)
        for target in re.findall(r'\]\(([^)\s]+)\)', text):
            if re.match(r'[a-z]+:', target) or target.startswith('#'):
                continue  # a URL, or an anchor in the same page
            path = os.path.normpath(os.path.join(DOC, target.split('#')[0]))
            if not os.path.exists(path):
                bad.append('%s -> %s' % (name, target))
    assert not bad, 'broken links: %s' % bad


# ---------------------------------------------------------------------- etc/


def test_example_ini_passes_check():
    pgtally_check(os.path.join(ETC, 'pgtally.ini'))


def test_grafana_dashboard_metrics_exist():
    with open(os.path.join(ETC, 'grafana-dashboard.json'), encoding='utf-8') as f:
        dash = json.load(f)
    exported = metrics_exported()
    assert 'pgtally_nplus1_findings_total' in exported  # the extraction itself works
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t['expr'] for t in p.get('targets', []) if 'expr' in t)
            walk(p.get('panels', []))
    walk(dash['panels'])
    exprs += [v.get('definition', '') for v in dash.get('templating', {}).get('list', [])]
    used = set(re.findall(r'pgtally_[a-z0-9_]+', '\n'.join(exprs)))
    assert len(used) >= 20, sorted(used)

    def known(name):
        if name in exported:
            return True
        return any(name.endswith(s) and name[:-len(s)] in exported
                   for s in HISTOGRAM_SUFFIXES)
    unknown = sorted(n for n in used if not known(n))
    assert not unknown, 'metrics the dashboard uses but src/metrics.c does not export: %s' % (
        unknown)
    # What the issue asks the dashboard to show.
    for metric in ('pgtally_pools_client_waiting_connections',
                   'pgtally_query_duration_seconds_bucket',
                   'pgtally_fingerprint_time_seconds_total', 'pgtally_nplus1_findings_total'):
        assert metric in used, metric
    assert any('by (route' in e for e in exprs if 'pgtally_nplus1_' in e)
    ids = [p['id'] for p in dash['panels']]
    assert len(ids) == len(set(ids)), 'duplicate panel ids'


def test_prometheus_config_is_valid():
    if not os.access(PROMTOOL, os.X_OK):
        pytest.skip('no %s (Debian package prometheus)' % PROMTOOL)
    res = run([PROMTOOL, 'check', 'config', os.path.join(ETC, 'prometheus.yml')])
    assert res.returncode == 0, res.stdout


def test_kubernetes_sidecar():
    yaml = pytest.importorskip('yaml')
    with open(os.path.join(ETC, 'kubernetes-sidecar.yaml'), encoding='utf-8') as f:
        docs = {d['kind']: d for d in yaml.safe_load_all(f) if d}
    assert {'ConfigMap', 'Secret', 'Deployment'} <= set(docs), sorted(docs)
    ini = docs['ConfigMap']['data']['pgtally.ini']
    port = re.search(r'^metrics_listen\s*=\s*\S*:(\d+)\s*$', ini, re.M)
    assert port, 'the sidecar ini sets no metrics_listen'
    spec = docs['Deployment']['spec']['template']['spec']
    containers = spec.get('initContainers', []) + spec['containers']
    sidecar = next(c for c in containers if c['name'] == 'pgtally')
    ports = {p['name']: p['containerPort'] for p in sidecar['ports']}
    assert ports['metrics'] == int(port.group(1)), (ports, port.group(0))
    probes = {k: sidecar[k]['httpGet'] for k in ('livenessProbe', 'readinessProbe')}
    assert probes['livenessProbe']['path'] == '/healthz'
    assert probes['readinessProbe']['path'] == '/readyz'
    for probe in probes.values():
        assert probe['port'] in ('metrics', ports['metrics']), probe
    mounts = {m['name']: m['mountPath'] for m in sidecar['volumeMounts']}
    volumes = {v['name']: v for v in spec['volumes']}
    assert volumes[next(n for n in mounts if 'configMap' in volumes[n])]['configMap'][
        'name'] == docs['ConfigMap']['metadata']['name']
    secret_mount = next(mounts[n] for n in mounts if 'secret' in volumes[n])
    auth_file = re.search(r'^auth_file\s*=\s*(\S+)', ini, re.M).group(1)
    assert auth_file == secret_mount + '/userlist.txt', (auth_file, secret_mount)
    assert 'userlist.txt' in docs['Secret']['stringData']
    # The ini itself must load; its auth_file path only exists in the pod.
    tmp = util.make_tempdir('pgtally-docs-')
    try:
        path = os.path.join(tmp, 'pgtally.ini')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(ini)
        pgtally_check(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_systemd_unit():
    text = read('etc', 'pgtally.service')
    exec_start = re.search(r'^ExecStart=(\S+) (.*)$', text, re.M)
    assert exec_start and exec_start.group(1).endswith('/pgtally'), text
    assert ' -d' not in exec_start.group(2), 'the unit runs pgtally in the foreground'
    assert re.search(r'^ExecReload=.*-HUP', text, re.M)
    assert re.search(r'^KillSignal=SIGINT$', text, re.M)
    analyze = shutil.which('systemd-analyze')
    if not analyze:
        pytest.skip('no systemd-analyze')
    tmp = util.make_tempdir('pgtally-docs-')
    try:
        # Verify against this tree's binary: the unit names the installed path.
        unit = os.path.join(tmp, 'pgtally.service')
        with open(unit, 'w', encoding='utf-8') as f:
            f.write(re.sub(r'^Documentation=.*\n', '',
                           text.replace(exec_start.group(1), need_pgtally()), flags=re.M))
        res = run([analyze, 'verify', unit])
        # Problems with the unit name it; other lines are about the host's own units.
        problems = [line for line in res.stdout.splitlines() if 'pgtally.service' in line]
        assert res.returncode == 0 and not problems, res.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------- man pages


def test_help_lists_every_flag_of_the_man_page():
    options = section(read('doc', 'pgtally.1.md'), 'OPTIONS')
    flags = set()
    for span in re.findall(r'`([^`]+)`', options):
        m = re.match(r'(--?[A-Za-z][\w-]*)', span)
        if m:
            flags.add(m.group(1))
    assert {'-d', '--daemon', '--check', '-V', '--version', '-h', '--help'} <= flags, flags
    res = run([need_pgtally(), '--help'])
    assert res.returncode == 0, res.stdout
    missing = sorted(f for f in flags
                     if not re.search(r'(?<![\w-])%s(?![\w-])' % re.escape(f), res.stdout))
    assert not missing, 'flags in doc/pgtally.1.md that --help does not list: %s\n%s' % (
        missing, res.stdout)


def test_version_flag():
    res = run([need_pgtally(), '--version'])
    assert res.returncode == 0
    m = re.match(r'pgtally (\d+\.\d+\.\d+)\s*$', res.stdout)
    assert m, res.stdout
    assert re.search(r'^AC_INIT\(\[pgtally\], \[%s\]' % re.escape(m.group(1)),
                     read('configure.ac'), re.M), 'configure.ac and --version disagree'


def config_md_options():
    """{option: (default, changeable)} from the options table of doc/config.md."""
    text = read('doc', 'config.md')
    table = text.split('<!-- options:begin -->')[1].split('<!-- options:end -->')[0]
    out = {}
    for line in table.splitlines():
        m = re.match(r'\| `([a-z0-9_]+)` \| (.*?) \| (yes|no) \|', line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3) == 'yes')
    assert len(out) > 50, 'cannot read the options table of doc/config.md'
    return out


def test_ini_man_page_matches_config_md():
    text = section(read('doc', 'pgtally.ini.5.md'), '[pgtally] SECTION')
    entries = {}
    for m in re.finditer(r'^`([a-z0-9_]+)` = (.*?)( \(restart\))?$', text, re.M):
        assert m.group(1) not in entries, 'documented twice: %s' % m.group(1)
        entries[m.group(1)] = (m.group(2), m.group(3) is None)
    table = config_md_options()
    assert sorted(set(table) - set(entries)) == [], 'options missing from the man page'
    assert sorted(set(entries) - set(table)) == [], 'man page options unknown to config.md'
    for name, (default, changeable) in sorted(table.items()):
        man_default, man_changeable = entries[name]
        want = 'empty' if default == '(empty)' else default
        assert man_default == want, '%s: man page says %s, config.md %s' % (
            name, man_default, default)
        assert man_changeable == changeable, '%s: restart flags differ' % name
