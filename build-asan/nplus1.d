build-asan/nplus1.o: src/nplus1.c include/nplus1.h include/config.h \
 include/fingerprint.h include/log.h
include/nplus1.h:
include/config.h:
include/fingerprint.h:
include/log.h:
