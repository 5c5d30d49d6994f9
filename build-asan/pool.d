build-asan/pool.o: src/pool.c include/pool.h include/config.h \
 include/iobuf.h include/list.h include/metrics.h include/client.h \
 include/pool.h include/prepared.h include/sbuf.h include/log.h \
 include/metrics.h include/server.h include/rq.h include/userlist.h \
 include/worker.h include/stats.h
include/pool.h:
include/config.h:
include/iobuf.h:
include/list.h:
include/metrics.h:
include/client.h:
include/pool.h:
include/prepared.h:
include/sbuf.h:
include/log.h:
include/metrics.h:
include/server.h:
include/rq.h:
include/userlist.h:
include/worker.h:
include/stats.h:
