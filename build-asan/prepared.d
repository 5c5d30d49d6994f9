build-asan/prepared.o: src/prepared.c include/prepared.h include/list.h \
 include/fingerprint.h
include/prepared.h:
include/list.h:
include/fingerprint.h:
