"""HTML door for accounts: register, log in/out (Django's views), profile."""

from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services
from accounts.forms import ProfileForm, RegisterForm, SetupForm
from core.errors import AppError


@require_http_methods(["GET", "POST"])
def register(request):
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_register(**form.cleaned_data)
        except AppError as error:
            form.add_error(None, error.detail)
        else:
            login(request, user, backend="accounts.backends.ModelBackend")
            return redirect("/")
    return render(request, "accounts/register.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    profile = request.user.profile
    form = ProfileForm(request.POST or None, request.FILES or None, initial={"display_name": profile.display_name})
    if request.method == "POST" and form.is_valid():
        try:
            services.profile_update(
                user=request.user,
                display_name=form.cleaned_data["display_name"],
                avatar=form.cleaned_data.get("avatar") or None,
            )
        except AppError as error:
            form.add_error(None, error.detail)
        else:
            messages.success(request, _("Your profile was saved."))
            return redirect("profile")
    return render(
        request, "accounts/profile.html", {"form": form, "profile": profile}, status=400 if form.errors else 200
    )


@login_required
@require_POST
def account_delete(request):
    """The profile page's "Delete my account" form (SPEC §6.5): the password, then gone."""
    try:
        services.account_delete(user=request.user, password=request.POST.get("password"))
    except AppError:
        messages.error(request, _("The password is not right."))
        return redirect("profile")
    logout(request)
    messages.success(request, _("Your account was deleted."))
    return redirect("login")


@require_http_methods(["GET", "POST"])
def setup(request):
    """First run (SPEC §6.7): while no staff account exists, the first one is made here
    with the setup code the server printed, with a first public room to land in."""
    from chat import services as chat_services

    if not services.setup_needed():
        raise Http404("This Parley is already set up.")
    form = SetupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.setup_create_staff(code=data["code"], username=data["username"], password=data["password"])
        except AppError as error:
            form.add_error(None, _(error.detail))
        else:
            login(request, user, backend="accounts.backends.ModelBackend")
            name = data["room"].strip() or _("General")
            room = chat_services.room_create(
                creator=user, slug=chat_services.room_slug_suggest(name), name=name
            )
            messages.success(request, _("You are the administrator of this Parley. Say hello!"))
            return redirect("room", slug=room.slug)
    return render(request, "accounts/setup.html", {"form": form}, status=400 if form.errors else 200)
