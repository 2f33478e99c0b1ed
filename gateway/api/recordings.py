"""`GET /recordings/...`: local recordings served to whoever holds a valid signed URL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from gateway.api.schemas import ErrorEnvelope
from gateway.errors import ApiError, NotFound
from media.storage import RECORDINGS_PATH, InvalidKey, LocalStorage, RecordingStorage

__all__ = ["recordings_router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorEnvelope,
        "description": "Bad signature (FORBIDDEN) or expired URL (RECORDING_URL_EXPIRED)",
    },
    404: {"model": ErrorEnvelope, "description": "No such recording"},
    422: {"model": ErrorEnvelope, "description": "Validation error"},
    500: {"model": ErrorEnvelope, "description": "Internal error"},
}


def recordings_router(storage: Callable[[], RecordingStorage | None]) -> APIRouter:
    """Serves local recordings to whoever holds a valid signed URL; `storage` gives the live backend."""
    router = APIRouter(tags=["recordings"])

    async def get_recording(key: str, expires: str = "", signature: str = "") -> FileResponse:
        backend = storage()
        if not isinstance(backend, LocalStorage):
            raise NotFound("Recordings are not served by this gateway")
        verdict = backend.check(key, expires, signature)
        if verdict == "invalid":
            raise ApiError("The recording URL signature is not valid", status=403, code="FORBIDDEN")
        if verdict == "expired":
            raise ApiError(
                "The recording URL has expired: read the call again for a fresh URL",
                status=403,
                code="RECORDING_URL_EXPIRED",
            )

        def locate() -> Path | None:
            try:
                found = backend.path_for(key)
            except InvalidKey:
                return None
            return found if key.endswith(".wav") and found.is_file() else None

        found = await asyncio.to_thread(locate)
        if found is None:
            raise NotFound("No such recording")
        return FileResponse(
            found,
            media_type="audio/wav",
            filename=Path(key).name,
            content_disposition_type="inline",
            headers={"Cache-Control": "private, max-age=300"},
        )

    route = RECORDINGS_PATH + "/{key:path}"
    router.add_api_route(
        route,
        get_recording,
        methods=["GET"],
        operation_id="get_recording",
        summary="Download a recording (signed URL)",
        description="The URL comes from a call's `recording_url`; its signature is the credential.",
        response_class=FileResponse,
        responses={200: {"content": {"audio/wav": {}}, "description": "The WAV file"}, **_ERRORS},
    )
    # Same handler: FileResponse sends only the headers for HEAD.
    router.add_api_route(route, get_recording, methods=["HEAD"], include_in_schema=False)
    return router
