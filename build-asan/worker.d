build-asan/worker.o: src/worker.c include/worker.h include/config.h \
 include/list.h include/prepared.h include/stats.h include/client.h \
 include/pool.h include/iobuf.h include/metrics.h include/sbuf.h \
 include/log.h include/nplus1.h include/fingerprint.h include/pool.h \
 include/sbuf.h include/server.h include/rq.h
include/worker.h:
include/config.h:
include/list.h:
include/prepared.h:
include/stats.h:
include/client.h:
include/pool.h:
include/iobuf.h:
include/metrics.h:
include/sbuf.h:
include/log.h:
include/nplus1.h:
include/fingerprint.h:
include/pool.h:
include/sbuf.h:
include/server.h:
include/rq.h:
