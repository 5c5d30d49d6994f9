build-asan/listener.o: src/listener.c include/listener.h include/client.h \
 include/config.h include/list.h include/pool.h include/iobuf.h \
 include/metrics.h include/prepared.h include/sbuf.h include/config.h \
 include/log.h include/worker.h include/stats.h
include/listener.h:
include/client.h:
include/config.h:
include/list.h:
include/pool.h:
include/iobuf.h:
include/metrics.h:
include/prepared.h:
include/sbuf.h:
include/config.h:
include/log.h:
include/worker.h:
include/stats.h:
