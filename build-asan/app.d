build-asan/app.o: src/app.c include/app.h include/config.h \
 include/listener.h include/log.h include/pool.h include/config.h \
 include/iobuf.h include/list.h include/metrics.h include/server.h \
 include/pool.h include/prepared.h include/rq.h include/sbuf.h \
 include/tls.h include/userlist.h include/worker.h include/stats.h
include/app.h:
include/config.h:
include/listener.h:
include/log.h:
include/pool.h:
include/config.h:
include/iobuf.h:
include/list.h:
include/metrics.h:
include/server.h:
include/pool.h:
include/prepared.h:
include/rq.h:
include/sbuf.h:
include/tls.h:
include/userlist.h:
include/worker.h:
include/stats.h:
