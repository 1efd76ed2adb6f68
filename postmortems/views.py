"""Postmortem and action item pages. Views parse input, call one service, render.

Every action answers an htmx request with the fragment it changed (sections swap in place,
workflow actions swap the page body) and a plain form post with a redirect, so every page
works without JavaScript. Form errors come back with status 422.
"""

from __future__ import annotations

import csv
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from incidents.markdown import render_markdown
from incidents.permissions import incident_can_respond, incident_get_for_view
from postmortems import selectors, services
from postmortems.facts import incident_facts
from postmortems.forms import (
    ActionItemFilterForm,
    ActionItemForm,
    ActionItemStatusForm,
    CommentForm,
    DetailsForm,
    PostmortemFilterForm,
    PreviewForm,
    QuickActionItemForm,
    SectionForm,
    SubmitForm,
    TimelineAddForm,
)
from postmortems.models import (
    ActionItem,
    ActionItemStatus,
    ExportState,
    Postmortem,
    PostmortemStatus,
)
from postmortems.permissions import (
    action_item_can_edit,
    action_item_get_for_edit,
    action_item_get_for_view,
    action_items_editable_by,
    postmortem_can_create,
    postmortem_can_edit,
    postmortem_get_for_edit,
    postmortem_get_for_review,
    postmortem_get_for_view,
)

DETAIL = "postmortems/postmortem_detail.html"
DASHBOARD = "postmortems/action_item_list.html"
ITEMS_PAGE_SIZE = 50
# The postmortem page shows both forms: prefixes keep their fields' ids apart.
DETAILS_PREFIX = "details"
ITEM_PREFIX = "item"


# --- Postmortem list -------------------------------------------------------------------------


@login_required
@require_GET
def postmortem_list(request: HttpRequest) -> HttpResponse:
    form = PostmortemFilterForm(request.GET or None)
    filters = selectors.PostmortemFilters()
    if form.is_valid():
        d = form.cleaned_data
        filters = selectors.PostmortemFilters(
            status=d["status"], late=d["late"], mine=d["mine"], query=d["q"]
        )
    paginator = Paginator(
        selectors.postmortem_list_for_user(user=request.user, filters=filters), 25
    )
    page = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "counts": selectors.postmortem_counts_for_user(user=request.user),
        "today": timezone.localdate(),
        "query_string": query.urlencode(),
    }
    template = "postmortems/postmortem_list.html"
    if request.htmx and request.htmx.target == "pm-results":
        template += "#results"
    return render(request, template, context)


# --- Creating ---------------------------------------------------------------------------------


@login_required
@require_POST
def postmortem_create(request: HttpRequest, incident_pk: int) -> HttpResponse:
    incident = incident_get_for_view(request.user, incident_pk)
    if not postmortem_can_create(request.user, incident):
        raise PermissionDenied("Only responders can start a postmortem.")
    try:
        postmortem = services.postmortem_create(incident=incident, actor=request.user)
    except services.PostmortemRefused as refused:
        if request.htmx:
            return _incident_panel_response(request, incident, error=str(refused), status=422)
        messages.error(request, str(refused))
        return redirect("incidents:detail", pk=incident.pk)
    url = reverse("postmortems:detail", kwargs={"pk": postmortem.pk})
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


# --- The postmortem page ---------------------------------------------------------------------


def _load(request: HttpRequest, pk: int) -> Postmortem:
    return postmortem_get_for_view(
        request.user, pk, queryset=selectors.postmortem_for_detail(pk=pk)
    )


def _context(
    request: HttpRequest,
    postmortem: Postmortem,
    *,
    editing: str = "",
    bound: dict[str, Any] | None = None,
    error: str = "",
    conflict: services.SectionConflict | None = None,
    preview_html: str | None = None,
) -> dict[str, Any]:
    bound = bound or {}
    incident = postmortem.incident
    services_list = list(incident.services.all())
    can_edit = postmortem_can_edit(request.user, postmortem)
    reviewers = list(postmortem.reviewers.select_related("user"))
    export = services.latest_export(postmortem) if postmortem.is_published else None
    today = timezone.localdate()
    return {
        "postmortem": postmortem,
        "incident": incident,
        "services": services_list,
        "facts": incident_facts(incident, services_list),
        "sections": selectors.postmortem_sections(postmortem=postmortem),
        "timeline_items": list(postmortem.timeline_items.all()),
        "action_items": selectors.postmortem_action_items(postmortem=postmortem),
        "reviewers": reviewers,
        "is_reviewer": any(r.user_id == request.user.pk for r in reviewers),
        "my_review": next((r for r in reviewers if r.user_id == request.user.pk), None),
        "events": list(postmortem.events.select_related("actor")[:20]),
        "authors": list(postmortem.authors.all()),
        "can_edit": can_edit,
        "can_review": can_edit or any(r.user_id == request.user.pk for r in reviewers),
        "approvals_pending": [r for r in reviewers if r.approved_at is None],
        "editable": can_edit and not postmortem.is_published,
        "can_add_items": can_edit or incident_can_respond(request.user, incident),
        "is_late": postmortem.is_late(today),
        "today": today,
        "export": export,
        "earlier_pdfs": selectors.postmortem_earlier_pdfs(postmortem=postmortem),
        "editing": editing,
        "error": error,
        "conflict": conflict,
        "preview_html": preview_html,
        "section_form": bound.get("section"),
        "details_form": bound.get("details")
        or DetailsForm(
            prefix=DETAILS_PREFIX,
            incident=incident,
            initial={
                "title": postmortem.title,
                "owner": postmortem.owner_id,
                "due_date": postmortem.due_date,
                "tags": ", ".join(postmortem.tags),
            },
        ),
        "timeline_form": bound.get("timeline") or TimelineAddForm(),
        "submit_form": bound.get("submit")
        or SubmitForm(incident=incident, initial={"reviewers": [r.user_id for r in reviewers]}),
        "comment_form": bound.get("comment") or CommentForm(),
        "item_form": bound.get("item") or ActionItemForm(prefix=ITEM_PREFIX, incident=incident),
        "statuses": PostmortemStatus,
    }


@login_required
@require_GET
def postmortem_detail(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem = _load(request, pk)
    return render(request, DETAIL, _context(request, postmortem))


def _page_response(
    request: HttpRequest, postmortem: Postmortem, *, success: str = "", status: int = 200, **kw
) -> HttpResponse:
    """After a workflow action: the page body for htmx, or a redirect (422 page on error)."""
    if request.htmx or status != 200:
        postmortem = selectors.postmortem_for_detail(pk=postmortem.pk).get()
        context = _context(request, postmortem, **kw)
        template = DETAIL + "#page" if request.htmx else DETAIL
        if success and request.htmx:
            context["flash"] = success
        return render(request, template, context, status=status)
    if success:
        messages.success(request, success)
    return redirect("postmortems:detail", pk=postmortem.pk)


# --- Sections --------------------------------------------------------------------------------


def _section_or_404(postmortem: Postmortem, key: str):
    section = postmortem.sections.select_related("updated_by").filter(key=key).first()
    if section is None:
        raise Http404("No such section.")
    return section


def _render_section(
    request, postmortem, section, *, form=None, conflict=None, preview=None, status=200
):
    context = _context(request, postmortem)
    section.comments_list = list(section.comments.select_related("author"))
    context.update(
        section=section,
        section_form=form,
        conflict=conflict,
        preview_html=preview,
    )
    name = "#section_form" if form is not None else "#section"
    return render(request, DETAIL + name, context, status=status)


@login_required
@require_GET
def section_edit(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    postmortem = postmortem_get_for_edit(request.user, pk)
    section = _section_or_404(postmortem, key)
    if postmortem.is_published:
        raise PermissionDenied("A published postmortem is read-only.")
    form = SectionForm(initial={"body": section.body, "base_version": section.version})
    if request.htmx:
        return _render_section(request, postmortem, section, form=form)
    context = _context(request, postmortem, editing=key, bound={"section": form})
    return render(request, DETAIL, context)


@login_required
@require_GET
def section_show(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    """One section as displayed (what "Cancel" swaps back in)."""
    postmortem = _load(request, pk)
    section = _section_or_404(postmortem, key)
    if request.htmx:
        return _render_section(request, postmortem, section)
    return redirect(reverse("postmortems:detail", kwargs={"pk": pk}) + f"#section-{key}")


@login_required
@require_POST
def section_save(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    postmortem = postmortem_get_for_edit(request.user, pk)
    section = _section_or_404(postmortem, key)
    form = SectionForm(request.POST)

    def again(*, conflict=None, preview=None, status=422):
        if request.htmx:
            return _render_section(
                request,
                postmortem,
                section,
                form=form,
                conflict=conflict,
                preview=preview,
                status=status,
            )
        context = _context(
            request,
            postmortem,
            editing=key,
            bound={"section": form},
            conflict=conflict,
            preview_html=preview,
        )
        return render(request, DETAIL, context, status=status)

    if not form.is_valid():
        return again()
    if "preview" in request.POST:  # the no-JS preview button
        return again(preview=render_markdown(form.cleaned_data["body"]), status=200)
    try:
        section = services.postmortem_section_save(
            postmortem=postmortem,
            section_key=key,
            actor=request.user,
            body=form.cleaned_data["body"],
            base_version=form.cleaned_data["base_version"],
        )
    except services.SectionConflict as conflict:
        # Keep what this person typed; the next save builds on the version they have seen.
        data = request.POST.copy()
        data["base_version"] = str(conflict.current_version)
        form = SectionForm(data)
        form.is_valid()
        section.refresh_from_db()
        return again(conflict=conflict)
    except services.PostmortemRefused as refused:
        form.add_error(None, str(refused))
        return again()
    if request.htmx:
        postmortem.refresh_from_db()
        return _render_section(request, postmortem, section)
    messages.success(request, f"Saved “{section.title}”.")
    return redirect(reverse("postmortems:detail", kwargs={"pk": pk}) + f"#section-{key}")


@login_required
@require_POST
def markdown_preview(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem_get_for_view(request.user, pk)
    form = PreviewForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Too long to preview.", status=422)
    html = render_markdown(form.cleaned_data["body"]) or '<p class="muted">Nothing to preview.</p>'
    return HttpResponse(f'<div class="prose pm-preview-body">{html}</div>')


@login_required
@require_GET
def section_revisions(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    postmortem = _load(request, pk)
    section = _section_or_404(postmortem, key)
    revisions = list(section.revisions.select_related("edited_by")[:50])
    for revision in revisions:
        revision.body_html = render_markdown(revision.body)
    return render(
        request,
        "postmortems/section_revisions.html",
        {"postmortem": postmortem, "section": section, "revisions": revisions},
    )


# --- Details, timeline ------------------------------------------------------------------------


@login_required
@require_POST
def postmortem_details(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem = postmortem_get_for_edit(request.user, pk)
    form = DetailsForm(request.POST, prefix=DETAILS_PREFIX, incident=postmortem.incident)
    if not form.is_valid():
        return _page_response(request, postmortem, bound={"details": form}, status=422)
    d = form.cleaned_data
    try:
        services.postmortem_update_details(
            postmortem=postmortem,
            actor=request.user,
            title=d["title"],
            owner=d["owner"],
            due_date=d["due_date"],
            tags=d["tags"],
        )
    except services.PostmortemRefused as refused:
        return _page_response(request, postmortem, error=str(refused), status=422)
    return _page_response(request, postmortem, success="Details saved.")


@login_required
@require_http_methods(["GET", "POST"])
def timeline_choose(request: HttpRequest, pk: int) -> HttpResponse:
    """Choose which incident timeline entries the postmortem's timeline shows."""
    postmortem = postmortem_get_for_edit(request.user, pk)
    if request.method == "POST":
        ids = []
        for value in request.POST.getlist("entries"):
            try:
                ids.append(int(value))
            except ValueError:
                return HttpResponse("entries must be integers.", status=400)
        try:
            services.postmortem_timeline_choose(
                postmortem=postmortem, actor=request.user, entry_ids=ids
            )
        except services.PostmortemRefused as refused:
            messages.error(request, str(refused))
            return redirect("postmortems:detail", pk=pk)
        messages.success(request, "Timeline updated.")
        return redirect(reverse("postmortems:detail", kwargs={"pk": pk}) + "#section-timeline")
    entries = selectors.incident_timeline_choices(postmortem=postmortem)
    return render(
        request,
        "postmortems/timeline_choose.html",
        {"postmortem": postmortem, "incident": postmortem.incident, "entries": entries},
    )


def _timeline_response(request, postmortem, *, form=None, error="", status=200):
    if request.htmx:
        postmortem = selectors.postmortem_for_detail(pk=postmortem.pk).get()
        context = _context(
            request, postmortem, bound={"timeline": form} if form else None, error=error
        )
        return render(request, DETAIL + "#pm_timeline", context, status=status)
    if status != 200:
        return _page_response(
            request,
            postmortem,
            bound={"timeline": form} if form else None,
            error=error,
            status=status,
        )
    return redirect(
        reverse("postmortems:detail", kwargs={"pk": postmortem.pk}) + "#section-timeline"
    )


@login_required
@require_POST
def timeline_add(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem = postmortem_get_for_edit(request.user, pk)
    form = TimelineAddForm(request.POST)
    if not form.is_valid():
        return _timeline_response(request, postmortem, form=form, status=422)
    try:
        services.postmortem_timeline_add(
            postmortem=postmortem,
            actor=request.user,
            occurred_at=form.cleaned_data["occurred_at"],
            body=form.cleaned_data["body"],
        )
    except services.PostmortemRefused as refused:
        form.add_error(None, str(refused))
        return _timeline_response(request, postmortem, form=form, status=422)
    return _timeline_response(request, postmortem)


@login_required
@require_POST
def timeline_remove(request: HttpRequest, pk: int, item_id: int) -> HttpResponse:
    postmortem = postmortem_get_for_edit(request.user, pk)
    try:
        services.postmortem_timeline_remove(
            postmortem=postmortem, actor=request.user, item_id=item_id
        )
    except services.PostmortemRefused as refused:
        return _timeline_response(request, postmortem, error=str(refused), status=422)
    return _timeline_response(request, postmortem)


# --- Review workflow --------------------------------------------------------------------------


@login_required
@require_POST
def postmortem_submit(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem = postmortem_get_for_edit(request.user, pk)
    form = SubmitForm(request.POST, incident=postmortem.incident)
    if not form.is_valid():
        return _page_response(request, postmortem, bound={"submit": form}, status=422)
    try:
        services.postmortem_submit_for_review(
            postmortem=postmortem,
            actor=request.user,
            reviewers=list(form.cleaned_data["reviewers"]),
        )
    except services.PostmortemRefused as refused:
        return _page_response(request, postmortem, error=str(refused), status=422)
    return _page_response(request, postmortem, success="Sent for review.")


@login_required
@require_POST
def postmortem_approve(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem = postmortem_get_for_review(request.user, pk)
    try:
        services.postmortem_approve(postmortem=postmortem, actor=request.user)
    except services.PostmortemRefused as refused:
        return _page_response(request, postmortem, error=str(refused), status=422)
    return _page_response(request, postmortem, success="Approved.")


@login_required
@require_POST
def postmortem_publish(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem = postmortem_get_for_edit(request.user, pk)
    try:
        services.postmortem_publish(postmortem=postmortem, actor=request.user)
    except services.PostmortemRefused as refused:
        return _page_response(request, postmortem, error=str(refused), status=422)
    return _page_response(request, postmortem, success="Published. It is now read-only.")


@login_required
@require_POST
def postmortem_revise(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem = postmortem_get_for_edit(request.user, pk)
    try:
        services.postmortem_start_revision(postmortem=postmortem, actor=request.user)
    except services.PostmortemRefused as refused:
        return _page_response(request, postmortem, error=str(refused), status=422)
    return _page_response(request, postmortem, success="New revision started: it is a draft again.")


@login_required
@require_POST
def comment_add(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem = postmortem_get_for_review(request.user, pk)
    form = CommentForm(request.POST)
    key = request.POST.get("section", "")
    if not form.is_valid():
        if request.htmx and key:
            section = _section_or_404(postmortem, key)
            return _render_section(request, postmortem, section, status=422)
        return _page_response(request, postmortem, bound={"comment": form}, status=422)
    try:
        services.postmortem_comment_add(
            postmortem=postmortem,
            actor=request.user,
            body=form.cleaned_data["body"],
            section_key=form.cleaned_data["section"],
        )
    except services.PostmortemRefused as refused:
        return _page_response(request, postmortem, error=str(refused), status=422)
    if request.htmx and key:
        return _render_section(request, postmortem, _section_or_404(postmortem, key))
    if request.htmx:
        return _page_response(request, postmortem)
    anchor = f"#section-{key}" if key else ""
    return redirect(reverse("postmortems:detail", kwargs={"pk": pk}) + anchor)


@login_required
@require_POST
def comment_resolve(request: HttpRequest, pk: int, comment_id: int) -> HttpResponse:
    postmortem = postmortem_get_for_edit(request.user, pk)
    comment = postmortem.comments.select_related("section").filter(pk=comment_id).first()
    if comment is None:
        raise Http404("No such comment.")
    try:
        services.postmortem_comment_resolve(
            postmortem=postmortem, actor=request.user, comment_id=comment_id
        )
    except services.PostmortemRefused as refused:
        return _page_response(request, postmortem, error=str(refused), status=422)
    if request.htmx and comment.section is not None:
        return _render_section(
            request, postmortem, _section_or_404(postmortem, comment.section.key)
        )
    return _page_response(request, postmortem)


# --- PDF export -------------------------------------------------------------------------------


def _export_response(request, postmortem, *, error: str = "", status: int = 200):
    if request.htmx:
        context = {
            "postmortem": postmortem,
            "export": services.latest_export(postmortem),
            "error": error,
        }
        return render(request, DETAIL + "#export", context, status=status)
    if error:
        messages.error(request, error)
    return redirect(reverse("postmortems:detail", kwargs={"pk": postmortem.pk}) + "#export")


@login_required
@require_POST
def export_request(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem = _load(request, pk)
    try:
        services.postmortem_export_request(postmortem=postmortem, actor=request.user)
    except services.PostmortemRefused as refused:
        return _export_response(request, postmortem, error=str(refused), status=422)
    return _export_response(request, postmortem)


@login_required
@require_GET
def export_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Polled by the page while the PDF renders."""
    postmortem = _load(request, pk)
    return _export_response(request, postmortem)


@login_required
@require_GET
def export_download(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem = _load(request, pk)
    export = postmortem.exports.filter(
        content_key=services.export_content_key(postmortem), state=ExportState.READY
    ).first()
    if export is None:
        raise Http404("The PDF of this version is not ready; export it first.")
    return _pdf_response(export, name=f"r{postmortem.revision_number}")


@login_required
@require_GET
def export_download_earlier(request: HttpRequest, pk: int, export_id: int) -> HttpResponse:
    """The PDF of an earlier published revision (kept after "Start a new revision")."""
    postmortem = _load(request, pk)
    export = postmortem.exports.filter(pk=export_id, state=ExportState.READY).first()
    if export is None:
        raise Http404("No such PDF.")
    return _pdf_response(export, name=export.content_key.split(".")[0])


def _pdf_response(export, *, name: str) -> HttpResponse:
    postmortem = export.postmortem
    response = HttpResponse(bytes(export.pdf), content_type="application/pdf")
    name = f"{postmortem.incident.reference}-postmortem-{name}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Content-Length"] = str(export.size)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- Action items -----------------------------------------------------------------------------


def _filters_from(form: ActionItemFilterForm, *, owner=None) -> selectors.ActionItemFilters:
    if not form.is_valid():
        return selectors.ActionItemFilters(owner=owner)
    d = form.cleaned_data
    return selectors.ActionItemFilters(
        team=d["team"].pk if d["team"] else None,
        owner=owner or (d["owner"].pk if d["owner"] else None),
        status=d["status"] if "status" in form.data else selectors.ACTIVE,
        priority=d["priority"],
        service=d["service"].pk if d["service"] else None,
        item_type=d["item_type"],
        overdue=d["overdue"],
        due_soon=d["due_soon"],
        query=d["q"],
    )


def _dashboard(request: HttpRequest, *, mine: bool) -> HttpResponse:
    form = ActionItemFilterForm(request.GET or None)
    filters = _filters_from(form, owner=request.user.pk if mine else None)
    today = timezone.localdate()
    paginator = Paginator(
        selectors.action_item_dashboard(user=request.user, filters=filters, today=today),
        ITEMS_PAGE_SIZE,
    )
    page = paginator.get_page(request.GET.get("page"))
    editable = action_items_editable_by(request.user, page.object_list)
    for item in page.object_list:
        item.can_edit = item.pk in editable
    summaries = selectors.action_item_team_summary(user=request.user, filters=filters, today=today)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "summaries": summaries,
        "total": selectors.summary_total(summaries),
        "today": today,
        "mine": mine,
        "due_soon_days": selectors.due_soon_days(),
        "query_string": query.urlencode(),
        "csv_url": reverse("postmortems:action_items_csv")
        + "?"
        + urlencode({**query.dict(), **({"owner": request.user.pk} if mine else {})}),
    }
    template = DASHBOARD
    if request.htmx and request.htmx.target == "ai-results":
        template += "#results"
    return render(request, template, context)


@login_required
@require_GET
def action_item_list(request: HttpRequest) -> HttpResponse:
    return _dashboard(request, mine=False)


@login_required
@require_GET
def my_action_items(request: HttpRequest) -> HttpResponse:
    return _dashboard(request, mine=True)


class _Echo:
    def write(self, value: str) -> str:
        return value


CSV_HEADER = [
    "reference", "title", "status", "priority", "type", "owner", "team", "due_date",
    "overdue_days", "incident", "incident_title", "severity", "postmortem", "tracker_url",
    "created_at", "completed_at", "wont_do_reason", "url",
]  # fmt: skip


def _csv_cell(value) -> str:
    # Spreadsheets run cells that start with = + - @ as formulas: neutralise them.
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@login_required
@require_GET
def action_items_csv(request: HttpRequest) -> StreamingHttpResponse:
    form = ActionItemFilterForm(request.GET or None)
    filters = _filters_from(form)
    today = timezone.localdate()
    items = selectors.action_item_dashboard(user=request.user, filters=filters, today=today)
    base = request.build_absolute_uri("/").rstrip("/")
    # Rows stream after the middleware has reset the time zone: keep the viewer's.
    zone = timezone.get_current_timezone()
    header = [
        f"{name} ({zone.key})" if name in ("created_at", "completed_at") else name
        for name in CSV_HEADER
    ]

    def rows():
        with timezone.override(zone):
            yield from zoned_rows()

    def zoned_rows():
        yield header
        for item in items.iterator(chunk_size=500):
            yield [
                _csv_cell(v)
                for v in (
                    item.reference,
                    item.title,
                    item.get_status_display(),
                    f"P{item.priority}",
                    item.get_item_type_display(),
                    item.owner.display_name if item.owner else "",
                    item.team.name if item.team else "",
                    item.due_date.isoformat() if item.due_date else "",
                    item.days_overdue(today) or "",
                    item.incident.reference,
                    item.incident.title,
                    item.incident.severity.name,
                    item.postmortem_id or "",
                    item.tracker_url,
                    timezone.localtime(item.created_at).isoformat(timespec="minutes"),
                    timezone.localtime(item.completed_at).isoformat(timespec="minutes")
                    if item.completed_at
                    else "",
                    item.wont_do_reason,
                    base + reverse("postmortems:action_item_detail", kwargs={"item_id": item.pk}),
                )
            ]

    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(r) for r in rows()), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="action-items-{stamp}.csv"'
    return response


def _item_context(request, item: ActionItem, *, bound=None, error: str = "") -> dict[str, Any]:
    bound = bound or {}
    return {
        "item": item,
        "incident": item.incident,
        "can_edit": action_item_can_edit(request.user, item),
        "events": selectors.action_item_events(item=item),
        "today": timezone.localdate(),
        "error": error,
        "status_form": bound.get("status") or ActionItemStatusForm(initial={"status": item.status}),
        "edit_form": bound.get("edit")
        or ActionItemForm(
            incident=item.incident,
            initial={
                "title": item.title,
                "item_type": item.item_type,
                "priority": item.priority,
                "owner": item.owner_id,
                "team": item.team_id,
                "due_date": item.due_date,
                "description": item.description,
                "tracker_url": item.tracker_url,
            },
        ),
        "statuses": ActionItemStatus,
    }


@login_required
@require_http_methods(["GET", "POST"])
def action_item_detail(request: HttpRequest, item_id: int) -> HttpResponse:
    """The item page; POST edits its fields."""
    item = action_item_get_for_view(request.user, item_id)
    if request.method == "POST":
        item = action_item_get_for_edit(request.user, item_id)
        form = ActionItemForm(request.POST, incident=item.incident)
        if form.is_valid():
            d = form.cleaned_data
            services.action_item_update(
                item=item,
                actor=request.user,
                title=d["title"],
                description=d["description"],
                owner=d["owner"],
                team=d["team"],
                due_date=d["due_date"],
                priority=d["priority"],
                item_type=d["item_type"],
                tracker_url=d["tracker_url"],
            )
            if not request.htmx:
                messages.success(request, "Action item saved.")
                return redirect("postmortems:action_item_detail", item_id=item.pk)
            item = action_item_get_for_view(request.user, item_id)
            return render(
                request,
                "postmortems/action_item_detail.html#item_page",
                _item_context(request, item),
            )
        context = _item_context(request, item, bound={"edit": form})
        template = "postmortems/action_item_detail.html"
        if request.htmx:
            template += "#item_page"
        return render(request, template, context, status=422)
    return render(request, "postmortems/action_item_detail.html", _item_context(request, item))


@login_required
@require_POST
def action_item_status(request: HttpRequest, item_id: int) -> HttpResponse:
    item = action_item_get_for_edit(request.user, item_id)
    form = ActionItemStatusForm(request.POST)
    row = request.POST.get("row") == "1"  # posted from a list row: answer with the row
    error = ""
    if form.is_valid():
        try:
            item = services.action_item_set_status(
                item=item,
                actor=request.user,
                status=form.cleaned_data["status"],
                reason=form.cleaned_data["reason"],
            )
        except services.PostmortemRefused as refused:
            error = str(refused)
    failed = bool(error) or not form.is_valid()
    item = action_item_get_for_view(request.user, item_id)
    if request.htmx and row:
        context = {
            "item": item,
            "today": timezone.localdate(),
            "can_edit": True,
            "row_error": error,
        }
        return render(
            request, "postmortems/_action_item_row.html", context, status=422 if failed else 200
        )
    if request.htmx:
        context = _item_context(
            request, item, bound={"status": form} if failed else None, error=error
        )
        return render(
            request,
            "postmortems/action_item_detail.html#item_page",
            context,
            status=422 if failed else 200,
        )
    if failed:
        context = _item_context(request, item, bound={"status": form}, error=error)
        return render(request, "postmortems/action_item_detail.html", context, status=422)
    messages.success(request, f"{item.reference} is now {item.get_status_display().lower()}.")
    back = request.POST.get("next", "")
    if back.startswith("/") and not back.startswith("//"):
        return redirect(back)
    return redirect("postmortems:action_item_detail", item_id=item.pk)


def _create_item(request, incident, form, *, postmortem=None) -> ActionItem:
    d = form.cleaned_data
    return services.action_item_create(
        incident=incident,
        actor=request.user,
        title=d["title"],
        item_type=d["item_type"],
        description=d.get("description", ""),
        owner=d.get("owner"),
        team=d.get("team") or (_owner_team(d.get("owner"))),
        due_date=d.get("due_date"),
        priority=d.get("priority") or 3,
        tracker_url=d.get("tracker_url", ""),
        postmortem=postmortem,
    )


def _owner_team(owner):
    # A follow-up without a team belongs to the owner's first team, so the manager sees it.
    if owner is None:
        return None
    membership = owner.memberships.select_related("team").order_by("team__name").first()
    return membership.team if membership else None


@login_required
@require_POST
def postmortem_action_item_create(request: HttpRequest, pk: int) -> HttpResponse:
    postmortem = postmortem_get_for_edit(request.user, pk)
    form = ActionItemForm(request.POST, prefix=ITEM_PREFIX, incident=postmortem.incident)
    if form.is_valid():
        try:
            _create_item(request, postmortem.incident, form, postmortem=postmortem)
        except services.PostmortemRefused as refused:
            form.add_error(None, str(refused))
    failed = bool(form.errors)
    if request.htmx:
        postmortem = selectors.postmortem_for_detail(pk=postmortem.pk).get()
        context = _context(request, postmortem, bound={"item": form} if failed else None)
        return render(request, DETAIL + "#pm_action_items", context, status=422 if failed else 200)
    if failed:
        return _page_response(request, postmortem, bound={"item": form}, status=422)
    return redirect(reverse("postmortems:detail", kwargs={"pk": pk}) + "#action-items")


@login_required
@require_POST
def incident_action_item_create(request: HttpRequest, incident_pk: int) -> HttpResponse:
    """The follow-up quick-add on the incident page."""
    incident = incident_get_for_view(request.user, incident_pk)
    if not incident_can_respond(request.user, incident):
        raise PermissionDenied("Only responders can add follow-ups.")
    form = QuickActionItemForm(request.POST, incident=incident)
    if form.is_valid():
        try:
            _create_item(request, incident, form)
        except services.PostmortemRefused as refused:
            form.add_error(None, str(refused))
    failed = bool(form.errors)
    if request.htmx:
        return _incident_panel_response(
            request, incident, form=form if failed else None, status=422 if failed else 200
        )
    if failed:
        return render(
            request,
            "postmortems/followup_form.html",
            {"incident": incident, "form": form},
            status=422,
        )
    messages.success(request, "Follow-up action item added.")
    return redirect("incidents:detail", pk=incident.pk)


@login_required
@require_GET
def incident_panel(request: HttpRequest, incident_pk: int) -> HttpResponse:
    """The incident page's postmortem panel on its own (htmx refresh, or no-JS form page)."""
    incident = incident_get_for_view(request.user, incident_pk)
    if request.htmx:
        return _incident_panel_response(request, incident)
    return render(
        request,
        "postmortems/followup_form.html",
        {"incident": incident, "form": QuickActionItemForm(incident=incident)},
    )


def _incident_panel_response(request, incident, *, form=None, error: str = "", status: int = 200):
    from postmortems.templatetags.postmortems import panel_context

    context = panel_context(request=request, incident=incident, user=request.user, form=form)
    context["error"] = error
    response = render(request, "postmortems/_incident_panel.html", context, status=status)
    response["HX-Trigger"] = "timeline-refresh"
    return response
