build-asan/sbuf.o: src/sbuf.c include/sbuf.h include/iobuf.h \
 include/log.h include/proto.h include/tls.h include/worker.h \
 include/config.h include/list.h include/prepared.h include/stats.h
include/sbuf.h:
include/iobuf.h:
include/log.h:
include/proto.h:
include/tls.h:
include/worker.h:
include/config.h:
include/list.h:
include/prepared.h:
include/stats.h:
