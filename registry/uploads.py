from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.template.defaultfilters import filesizeformat


class LimitedUploadHandler(FileUploadHandler):
    """Stops reading a file as soon as it passes MF_MAX_UPLOAD_MB, before it fills the disk.

    The rest of the request body is drained and discarded; the view reads
    `request.upload_rejected` (field name, limit) to answer 400 naming the field.
    """

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        limit = settings.MF_MAX_UPLOAD_BYTES
        if start + len(raw_data) > limit:
            self.request.upload_rejected = (self.field_name, limit)  # type: ignore[union-attr]
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> Any:
        return None


def rejected_upload_errors(request: Any) -> dict[str, list[str]] | None:
    rejected = getattr(request, "upload_rejected", None)
    if rejected is None:
        return None
    field, limit = rejected
    return {field: [f"The file is larger than the upload limit of {filesizeformat(limit)} (MF_MAX_UPLOAD_MB sets it)."]}
