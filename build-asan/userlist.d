build-asan/userlist.o: src/userlist.c include/userlist.h
include/userlist.h:
