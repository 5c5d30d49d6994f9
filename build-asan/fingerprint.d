build-asan/fingerprint.o: src/fingerprint.c include/fingerprint.h
include/fingerprint.h:
