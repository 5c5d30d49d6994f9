build-asan/metrics.o: src/metrics.c include/metrics.h include/config.h \
 include/admin.h include/iobuf.h include/app.h include/client.h \
 include/list.h include/pool.h include/metrics.h include/prepared.h \
 include/sbuf.h include/fingerprint.h include/log.h include/pool.h \
 include/server.h include/rq.h include/worker.h include/stats.h
include/metrics.h:
include/config.h:
include/admin.h:
include/iobuf.h:
include/app.h:
include/client.h:
include/list.h:
include/pool.h:
include/metrics.h:
include/prepared.h:
include/sbuf.h:
include/fingerprint.h:
include/log.h:
include/pool.h:
include/server.h:
include/rq.h:
include/worker.h:
include/stats.h:
