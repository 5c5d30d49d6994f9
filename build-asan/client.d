build-asan/client.o: src/client.c include/client.h include/config.h \
 include/list.h include/pool.h include/iobuf.h include/metrics.h \
 include/prepared.h include/sbuf.h include/admin.h include/auth.h \
 include/log.h include/fingerprint.h include/nplus1.h \
 include/fingerprint.h include/prepared.h include/proto.h include/rq.h \
 include/server.h include/rq.h include/stats.h include/tls.h \
 include/worker.h include/stats.h
include/client.h:
include/config.h:
include/list.h:
include/pool.h:
include/iobuf.h:
include/metrics.h:
include/prepared.h:
include/sbuf.h:
include/admin.h:
include/auth.h:
include/log.h:
include/fingerprint.h:
include/nplus1.h:
include/fingerprint.h:
include/prepared.h:
include/proto.h:
include/rq.h:
include/server.h:
include/rq.h:
include/stats.h:
include/tls.h:
include/worker.h:
include/stats.h:
