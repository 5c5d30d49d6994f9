build-asan/main.o: src/main.c include/app.h include/config.h \
 include/listener.h include/log.h include/metrics.h include/config.h \
 include/pool.h include/iobuf.h include/list.h include/metrics.h \
 include/tls.h include/userlist.h include/worker.h include/prepared.h \
 include/stats.h
include/app.h:
include/config.h:
include/listener.h:
include/log.h:
include/metrics.h:
include/config.h:
include/pool.h:
include/iobuf.h:
include/list.h:
include/metrics.h:
include/tls.h:
include/userlist.h:
include/worker.h:
include/prepared.h:
include/stats.h:
