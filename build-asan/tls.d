build-asan/tls.o: src/tls.c include/tls.h include/config.h
include/tls.h:
include/config.h:
