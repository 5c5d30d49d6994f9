"""views: each "bad" view runs one query per row of an earlier query (or the same query again
and again), the mistake pgtally's N+1 detection is for; each "fixed" view returns the same
data with the ORM feature that avoids it. Every view answers a small JSON document."""

from django.db.models import Count
from django.http import JsonResponse

from .models import Author, Book, Review

CREATED_PER_REQUEST = 10
SAME_GET_REPEATS = 10


# ---------------------------------------------------------------------- bad


def fk_loop(request):
    """book.author per book: one SELECT on shop_author per book."""
    return JsonResponse({'authors': [b.author.name for b in Book.objects.order_by('id')]})


def count_loop(request):
    """author.book_set.count() per author: a COUNT over the reverse ForeignKey per author."""
    counts = {a.name: a.book_set.count() for a in Author.objects.order_by('id')}
    return JsonResponse({'books': counts})


def m2m_loop(request):
    """book.tags.all() per book: one join over the ManyToMany table per book."""
    tags = {b.title: [t.name for t in b.tags.all()] for b in Book.objects.order_by('id')}
    return JsonResponse({'tags': tags})


def reverse_fk_loop(request):
    """book.review_set.all() per book: one SELECT on shop_review per book."""
    reviews = {b.title: len(b.review_set.all()) for b in Book.objects.order_by('id')}
    return JsonResponse({'reviews': reviews})


def create_loop(request):
    """Review.objects.create() per row: one INSERT per review."""
    book_ids = list(Book.objects.order_by('id').values_list('id', flat=True)[:CREATED_PER_REQUEST])
    for i, book_id in enumerate(book_ids):
        Review.objects.create(book_id=book_id, stars=i % 5 + 1, text='looped')
    return JsonResponse({'created': len(book_ids)})


def same_get(request, pk):
    """The same Author.objects.get() again and again, with the same parameters."""
    names = [Author.objects.get(pk=pk).name for _ in range(SAME_GET_REPEATS)]
    return JsonResponse({'name': names[0], 'gets': len(names)})


# ---------------------------------------------------------------------- fixed


def fk_select_related(request):
    books = Book.objects.select_related('author').order_by('id')
    return JsonResponse({'authors': [b.author.name for b in books]})


def count_annotate(request):
    authors = Author.objects.annotate(n_books=Count('book')).order_by('id')
    return JsonResponse({'books': {a.name: a.n_books for a in authors}})


def m2m_prefetch(request):
    books = Book.objects.prefetch_related('tags').order_by('id')
    return JsonResponse({'tags': {b.title: [t.name for t in b.tags.all()] for b in books}})


def reverse_fk_prefetch(request):
    books = Book.objects.prefetch_related('review_set').order_by('id')
    return JsonResponse({'reviews': {b.title: len(b.review_set.all()) for b in books}})


def create_bulk(request):
    book_ids = list(Book.objects.order_by('id').values_list('id', flat=True)[:CREATED_PER_REQUEST])
    Review.objects.bulk_create([Review(book_id=book_id, stars=i % 5 + 1, text='bulk')
                                for i, book_id in enumerate(book_ids)])
    return JsonResponse({'created': len(book_ids)})


def single_get(request, pk):
    return JsonResponse({'name': Author.objects.get(pk=pk).name, 'gets': 1})
