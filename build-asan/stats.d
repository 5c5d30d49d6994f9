build-asan/stats.o: src/stats.c include/stats.h include/config.h \
 include/client.h include/list.h include/pool.h include/iobuf.h \
 include/metrics.h include/prepared.h include/sbuf.h \
 include/fingerprint.h include/metrics.h include/pool.h include/rq.h \
 include/server.h include/rq.h include/worker.h include/stats.h
include/stats.h:
include/config.h:
include/client.h:
include/list.h:
include/pool.h:
include/iobuf.h:
include/metrics.h:
include/prepared.h:
include/sbuf.h:
include/fingerprint.h:
include/metrics.h:
include/pool.h:
include/rq.h:
include/server.h:
include/rq.h:
include/worker.h:
include/stats.h:
