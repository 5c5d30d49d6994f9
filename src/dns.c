/* dns: host names looked up without blocking the loop, kept per worker (include/dns.h). */
#include "dns.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pool.h"
#include "worker.h"

/* A name's addresses are kept up to this many (PgBouncer keeps all; 16 is plenty). */
#define DNS_MAX_ADDRS 16

struct dns_name {
	struct dns_name *next;
	struct worker *w;
	char *name;
	union dns_addr addrs[DNS_MAX_ADDRS];
	socklen_t lens[DNS_MAX_ADDRS];
	bool failed[DNS_MAX_ADDRS]; /* a connection to it failed since the lookup */
	int naddr;
	unsigned turn;  /* the next address handed out */
	int err;        /* EVUTIL_EAI_* of the last lookup; 0 when it found addresses */
	usec_t expires; /* the last answer holds until then */
	bool fresh;     /* the last answer is unused: good once even with a TTL of 0 */
	bool starting;  /* inside evdns_getaddrinfo(), which may answer at once */
	struct evdns_getaddrinfo_request *req;
};

bool dns_init(struct worker *w)
{
	const char *conf = w->cfg->resolv_conf;
	bool own = conf && *conf;
	w->dns = evdns_base_new(w->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE |
						 (own ? 0 : EVDNS_BASE_INITIALIZE_NAMESERVERS));
	if (!w->dns)
		return false;
	if (own) {
		int rc = evdns_base_resolv_conf_parse(w->dns, DNS_OPTIONS_ALL, conf);
		if (rc != 0 && w->id == 0)
			log_warning("resolv_conf %s: %s", conf,
				    rc == 1 ? "cannot be opened"
				    : rc == 6 ? "names no nameserver (using 127.0.0.1)"
					      : "cannot be read");
	}
	return true;
}

void dns_free(struct worker *w)
{
	w->dns_closing = true; /* answers that come while the resolver is freed are dropped */
	struct dns_name *n = w->dns_names;
	while (n) {
		struct dns_name *next = n->next;
		if (n->req)
			evdns_getaddrinfo_cancel(n->req);
		free(n->name);
		free(n);
		n = next;
	}
	w->dns_names = NULL;
	if (w->dns)
		evdns_base_free(w->dns, 1);
	w->dns = NULL;
}

static void dns_done(int result, struct evutil_addrinfo *res, void *arg)
{
	struct dns_name *n = arg;
	if (result == EVUTIL_EAI_CANCEL || n->w->dns_closing) {
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	struct worker *w = n->w;
	worker_tick(w); /* the time now, not that of the last callback */
	n->req = NULL;
	n->naddr = 0;
	memset(n->failed, 0, sizeof(n->failed));
	for (struct evutil_addrinfo *a = res; a && n->naddr < DNS_MAX_ADDRS; a = a->ai_next) {
		if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
		    a->ai_addrlen > sizeof(n->addrs[0]))
			continue;
		memcpy(&n->addrs[n->naddr], a->ai_addr, a->ai_addrlen);
		n->lens[n->naddr++] = (socklen_t)a->ai_addrlen;
	}
	if (res)
		evutil_freeaddrinfo(res);
	n->err = n->naddr ? 0 : result ? result : EVUTIL_EAI_NONAME;
	n->expires = worker_now(w) + (n->err ? w->cfg->dns_nxdomain_ttl : w->cfg->dns_max_ttl);
	n->fresh = true;
	if (n->err)
		log_warning("cannot resolve %s: %s", n->name, evutil_gai_strerror(n->err));
	if (n->starting)
		return; /* answered within dns_address(), which carries on */
	pool_maintain_all(w);
}

static struct dns_name *dns_name_find(const struct worker *w, const char *host)
{
	struct dns_name *n = w->dns_names;
	while (n && strcmp(n->name, host) != 0)
		n = n->next;
	return n;
}

static struct dns_name *dns_name_get(struct worker *w, const char *host)
{
	struct dns_name *n = dns_name_find(w, host);
	if (n)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(host))) {
		free(n);
		return NULL;
	}
	n->w = w;
	n->next = w->dns_names;
	w->dns_names = n;
	return n;
}

static void dns_set_port(union dns_addr *addr, int port)
{
	if (addr->sa.sa_family == AF_INET)
		addr->in.sin_port = htons((uint16_t)port);
	else
		addr->in6.sin6_port = htons((uint16_t)port);
}

/* A numeric address (fe80::1%eth0 too): no lookup, so getaddrinfo() does not block. */
static bool dns_numeric(const char *host, int port, union dns_addr *addr, socklen_t *len)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return false;
	bool ok = (res->ai_family == AF_INET || res->ai_family == AF_INET6) &&
		  res->ai_addrlen <= sizeof(*addr);
	if (ok) {
		memset(addr, 0, sizeof(*addr));
		memcpy(addr, res->ai_addr, res->ai_addrlen);
		*len = (socklen_t)res->ai_addrlen;
		dns_set_port(addr, port);
	}
	freeaddrinfo(res);
	return ok;
}

enum dns_result dns_address(struct worker *w, const char *host, int port, union dns_addr *addr,
			    socklen_t *len, char *err, size_t errlen)
{
	if (dns_numeric(host, port, addr, len))
		return DNS_READY;
	struct dns_name *n = dns_name_get(w, host);
	if (!n) {
		snprintf(err, errlen, "cannot resolve %s: out of memory", host);
		return DNS_FAILED;
	}
	if (!n->req && !n->fresh && worker_now(w) >= n->expires) {
		struct evutil_addrinfo hints;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_protocol = IPPROTO_TCP;
		n->starting = true;
		struct evdns_getaddrinfo_request *req =
			evdns_getaddrinfo(w->dns, host, NULL, &hints, dns_done, n);
		n->starting = false;
		if (req && !n->fresh)
			n->req = req; /* NULL when it answered at once (/etc/hosts, a failure) */
	}
	if (n->req)
		return DNS_PENDING;
	n->fresh = false;
	if (n->err) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, evutil_gai_strerror(n->err));
		return DNS_FAILED;
	}
	/* The next address in turn that no connection failed to since the lookup. */
	unsigned i = n->turn++ % (unsigned)n->naddr;
	for (int k = 0; k < n->naddr && n->failed[i]; k++)
		i = n->turn++ % (unsigned)n->naddr;
	*addr = n->addrs[i];
	*len = n->lens[i];
	dns_set_port(addr, port);
	return DNS_READY;
}

/* The same address, whatever its port. */
static bool dns_same(const union dns_addr *a, const union dns_addr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
	return memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr)) == 0 &&
	       a->in6.sin6_scope_id == b->in6.sin6_scope_id;
}

bool dns_address_failed(struct worker *w, const char *host, const union dns_addr *addr)
{
	struct dns_name *n = dns_name_find(w, host);
	if (!n || n->naddr < 2)
		return false;
	bool left = false;
	for (int i = 0; i < n->naddr; i++) {
		if (dns_same(&n->addrs[i], addr))
			n->failed[i] = true;
		left |= !n->failed[i];
	}
	if (!left) /* all failed: the next connection tries them all again */
		memset(n->failed, 0, sizeof(n->failed));
	return left;
}

void dns_each(const struct worker *w, void (*fn)(void *arg, const char *name, long long ttl,
						   const char *addrs),
	      void *arg)
{
	usec_t now = w->now; /* worker_now() of a const worker */
	for (const struct dns_name *n = w->dns_names; n; n = n->next) {
		if (!n->naddr)
			continue;
		char addrs[DNS_MAX_ADDRS * (INET6_ADDRSTRLEN + 1)] = "";
		size_t used = 0;
		for (int i = 0; i < n->naddr; i++) {
			char one[INET6_ADDRSTRLEN];
			const union dns_addr *a = &n->addrs[i];
			const void *raw = a->sa.sa_family == AF_INET ? (const void *)&a->in.sin_addr
								     : (const void *)&a->in6.sin6_addr;
			if (!inet_ntop(a->sa.sa_family, raw, one, sizeof(one)))
				continue;
			used += (size_t)snprintf(addrs + used, sizeof(addrs) - used, "%s%s",
						 used ? "," : "", one);
		}
		long long ttl = n->expires > now ? (long long)((n->expires - now) / 1000000) : 0;
		fn(arg, n->name, ttl, addrs);
	}
}

void dns_counts(const struct worker *w, int *names, int *pending)
{
	*names = *pending = 0;
	for (const struct dns_name *n = w->dns_names; n; n = n->next) {
		(*names)++;
		*pending += n->req != NULL;
	}
}
