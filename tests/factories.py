from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from registry.choices import ModelTask
from registry.models import RegisteredModel


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        # The role hook only adds a group (a many-to-many row): nothing to save again.
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    first_name = factory.LazyAttribute(lambda user: user.username.capitalize())
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        if create and extracted:
            user: Any = self  # factory_boy passes the created User here
            user.groups.add(Group.objects.get(name=extracted))


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel

    name = factory.Sequence(lambda n: f"model-{n}")
    title = factory.LazyAttribute(lambda model: model.name.replace("-", " ").title())
    task = ModelTask.CLASSIFICATION
    owner = factory.SubFactory(UserFactory)
