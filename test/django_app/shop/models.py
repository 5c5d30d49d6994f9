"""models: Book has a ForeignKey to Author and a ManyToMany to Tag; Review has a ForeignKey to
Book, which gives Book a reverse ForeignKey (book.review_set)."""

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)


class Tag(models.Model):
    name = models.CharField(max_length=50)


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    tags = models.ManyToManyField(Tag)


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE)
    stars = models.SmallIntegerField()
    text = models.CharField(max_length=200)
