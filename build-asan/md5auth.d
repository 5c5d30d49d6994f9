build-asan/md5auth.o: src/md5auth.c include/md5auth.h include/scram.h
include/md5auth.h:
include/scram.h:
