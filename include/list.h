/* list: an intrusive circular doubly linked list; a connection's state is the list it is on. */
#ifndef PGT_LIST_H
#define PGT_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
	struct list *next;
	struct list *prev;
};

#define LIST_INIT(name) {&(name), &(name)}

static inline void list_init(struct list *l)
{
	l->next = l;
	l->prev = l;
}

static inline bool list_empty(const struct list *l)
{
	return l->next == l;
}

static inline void list_append(struct list *head, struct list *item)
{
	item->prev = head->prev;
	item->next = head;
	head->prev->next = item;
	head->prev = item;
}

static inline void list_del(struct list *item)
{
	item->prev->next = item->next;
	item->next->prev = item->prev;
	item->next = item;
	item->prev = item;
}

static inline struct list *list_first(const struct list *head)
{
	return list_empty(head) ? NULL : head->next;
}

/* Number of items: O(n), used by SHOW commands only. */
static inline size_t list_count(const struct list *head)
{
	size_t n = 0;
	for (const struct list *i = head->next; i != head; i = i->next)
		n++;
	return n;
}

/* Number of items, but stop counting at max: O(min(n, max)). */
static inline size_t list_count_upto(const struct list *head, size_t max)
{
	size_t n = 0;
	for (const struct list *i = head->next; i != head && n < max; i = i->next)
		n++;
	return n;
}

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Iterate safely against removal of the current item. */
#define list_for_each_safe(pos, tmp, head)                                                         \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); (pos) = (tmp), (tmp) = (pos)->next)

#endif
