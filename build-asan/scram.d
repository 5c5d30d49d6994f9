build-asan/scram.o: src/scram.c include/scram.h
include/scram.h:
