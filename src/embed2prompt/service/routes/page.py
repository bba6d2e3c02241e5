"""``/``: the web page to try inversion and watch jobs, and its two static files.

The page is plain HTML with one stylesheet and one script, shipped in the package
(``service/web``): nothing to build, nothing loaded from outside the machine (its
Content-Security-Policy lets it load and call nothing but this service). Everything it
does goes through the documented API with the key the person types (kept in the tab's
``sessionStorage``), so the page adds no way in: its own paths hold no data and are
open, like ``/docs``.
"""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files
from string import Template

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from embed2prompt import __version__
from embed2prompt.service.dependencies import SettingsDep
from embed2prompt.service.schemas import MAX_REFINEMENT_STEPS

router = APIRouter()

_WEB = files("embed2prompt").joinpath("service", "web")
STATIC_TYPES = {
    "page.css": "text/css; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
}
# The page's own paths: open without the key (see the module's docstring).
PAGE_PATHS = frozenset(["/", *(f"/static/{name}" for name in STATIC_TYPES)])

_HEADERS = {
    # Only this service, for everything: no CDN, no beacon, no framing by other sites.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",  # revalidated, so an upgraded service serves its own page
}


@cache
def _read(name: str) -> str:
    return _WEB.joinpath(name).read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(settings: SettingsDep) -> HTMLResponse:
    """The page, with the service's defaults filled in."""
    values = {
        "version": __version__,
        "refinement_steps": settings.refinement_steps,
        "max_refinement_steps": MAX_REFINEMENT_STEPS,
        "key_required": "true" if settings.api_key is not None else "false",
    }
    body = Template(_read("index.html")).substitute(
        {name: html.escape(str(value)) for name, value in values.items()}
    )
    return HTMLResponse(body, headers=_HEADERS)


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    """The page's stylesheet and script (only those: no path reaches other files)."""
    media_type = STATIC_TYPES.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail="no such file")
    return Response(_read(f"static/{name}"), media_type=media_type, headers=_HEADERS)
