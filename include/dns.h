/*
 * dns: server host names resolved without blocking the event loop (libevent's evdns, which
 * reads resolv.conf and /etc/hosts), each worker keeping what it found for dns_max_ttl and
 * handing the addresses of a name out in turn. PgBouncer does the same with c-ares.
 */
#ifndef PGT_DNS_H
#define PGT_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct worker;

/* An address a server connection goes to (and its cancel requests: the same backend). */
union dns_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

enum dns_result {
	DNS_READY,   /* *addr is the address to connect to */
	DNS_PENDING, /* a lookup is under way: each pool of the worker is maintained when it ends */
	DNS_FAILED,  /* err says why; kept for dns_nxdomain_ttl */
};

/* The worker's resolver, from cfg->resolv_conf or the system's; false when out of memory. */
bool dns_init(struct worker *w);
void dns_free(struct worker *w);

/*
 * The address for a new connection to host (a name or a numeric address) and port: a name's
 * addresses in turn, one per call. Numeric addresses need no lookup.
 */
enum dns_result dns_address(struct worker *w, const char *host, int port, union dns_addr *addr,
			    socklen_t *len, char *err, size_t errlen);

/*
 * A connection to addr, one of host's addresses, failed: later ones skip it until the name is
 * looked up again. True when the name has another address left to try at once.
 */
bool dns_address_failed(struct worker *w, const char *host, const union dns_addr *addr);

/*
 * For SHOW DNS_HOSTS: each name w keeps with an answer, the seconds that answer still holds
 * (0 when it has run out) and its addresses ("a,b"); fn's strings last the call.
 */
void dns_each(const struct worker *w, void (*fn)(void *arg, const char *name, long long ttl,
						   const char *addrs),
	      void *arg);

/* For SHOW LISTS: names known, and lookups under way. */
void dns_counts(const struct worker *w, int *names, int *pending);

#endif
