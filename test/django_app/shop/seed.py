"""seed: recreates the shop tables and fills them with a fixed data set, so that every run of
the tests sees the same ids and row counts."""

from django.core.management import call_command
from django.db import connection

from .models import Author, Book, Review, Tag

AUTHORS = 10
BOOKS_PER_AUTHOR = 2
TAGS = 5
TAGS_PER_BOOK = 2


def reset_schema():
    """Drop the shop tables left by an earlier run, then create them again."""
    with connection.cursor() as cur:
        for table in connection.introspection.table_names(cur):
            if table.startswith('shop_'):
                cur.execute('DROP TABLE IF EXISTS %s CASCADE' % connection.ops.quote_name(table))
    call_command('migrate', run_syncdb=True, verbosity=0)


def seed():
    """10 authors (ids 1..10), 20 books (2 per author), 5 tags (2 per book), 1 review per book."""
    authors = Author.objects.bulk_create(
        [Author(name='Author %d' % i) for i in range(1, AUTHORS + 1)])
    tags = Tag.objects.bulk_create([Tag(name='tag%d' % i) for i in range(1, TAGS + 1)])
    books = Book.objects.bulk_create(
        [Book(title='Book %d.%d' % (a.id, n), author=a)
         for a in authors for n in range(1, BOOKS_PER_AUTHOR + 1)])
    Book.tags.through.objects.bulk_create(
        [Book.tags.through(book_id=b.id, tag_id=tags[(i + k) % TAGS].id)
         for i, b in enumerate(books) for k in range(TAGS_PER_BOOK)])
    Review.objects.bulk_create([Review(book=b, stars=3, text='seeded') for b in books])


def reset_and_seed():
    reset_schema()
    seed()
