build-asan/admin.o: src/admin.c include/admin.h include/config.h \
 include/iobuf.h include/app.h include/client.h include/list.h \
 include/pool.h include/metrics.h include/prepared.h include/sbuf.h \
 include/log.h include/metrics.h include/pool.h include/nplus1.h \
 include/fingerprint.h include/proto.h include/stats.h include/server.h \
 include/rq.h include/worker.h include/stats.h
include/admin.h:
include/config.h:
include/iobuf.h:
include/app.h:
include/client.h:
include/list.h:
include/pool.h:
include/metrics.h:
include/prepared.h:
include/sbuf.h:
include/log.h:
include/metrics.h:
include/pool.h:
include/nplus1.h:
include/fingerprint.h:
include/proto.h:
include/stats.h:
include/server.h:
include/rq.h:
include/worker.h:
include/stats.h:
