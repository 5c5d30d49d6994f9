build-asan/server.o: src/server.c include/server.h include/config.h \
 include/list.h include/pool.h include/iobuf.h include/metrics.h \
 include/prepared.h include/rq.h include/sbuf.h include/auth.h \
 include/client.h include/log.h include/md5auth.h include/metrics.h \
 include/nplus1.h include/fingerprint.h include/proto.h include/scram.h \
 include/stats.h include/worker.h include/stats.h
include/server.h:
include/config.h:
include/list.h:
include/pool.h:
include/iobuf.h:
include/metrics.h:
include/prepared.h:
include/rq.h:
include/sbuf.h:
include/auth.h:
include/client.h:
include/log.h:
include/md5auth.h:
include/metrics.h:
include/nplus1.h:
include/fingerprint.h:
include/proto.h:
include/scram.h:
include/stats.h:
include/worker.h:
include/stats.h:
