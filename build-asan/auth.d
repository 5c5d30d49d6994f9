build-asan/auth.o: src/auth.c include/auth.h include/client.h \
 include/config.h include/list.h include/pool.h include/iobuf.h \
 include/metrics.h include/prepared.h include/sbuf.h include/log.h \
 include/md5auth.h include/proto.h include/pool.h include/scram.h \
 include/server.h include/rq.h include/userlist.h include/worker.h \
 include/stats.h
include/auth.h:
include/client.h:
include/config.h:
include/list.h:
include/pool.h:
include/iobuf.h:
include/metrics.h:
include/prepared.h:
include/sbuf.h:
include/log.h:
include/md5auth.h:
include/proto.h:
include/pool.h:
include/scram.h:
include/server.h:
include/rq.h:
include/userlist.h:
include/worker.h:
include/stats.h:
