build-asan/proto.o: src/proto.c include/proto.h include/iobuf.h
include/proto.h:
include/iobuf.h:
