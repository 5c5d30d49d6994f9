build-asan/iobuf.o: src/iobuf.c include/iobuf.h
include/iobuf.h:
