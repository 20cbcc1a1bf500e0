"""Which PMC article versions to read, decided from their metadata ``.json``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PmcFilter:
    """Filter on the PMC metadata JSON (``PMC{id}.{v}.json``).

    - ``require_open_access``: skip (``not_open_access``) when ``is_pmc_openaccess`` is false.
    - ``licenses``: allow-list of ``license_code`` values (e.g. ``{"CC BY", "CC0"}``), compared
      case-insensitively; ``None`` allows any (``license_not_allowed`` otherwise).
    - ``exclude_retracted``: skip (``retracted``) when ``is_retracted`` is true.
    - ``exclude_manuscripts`` / ``exclude_historical_ocr``: the same for ``is_manuscript`` and
      ``is_historical_ocr`` (off by default).
    - ``require_metadata``: skip (``no_metadata``) a per-version ``.xml`` with no metadata JSON;
      when false such a file is read and a warning logged. Legacy ``.nxml`` never needs metadata.
    """

    require_open_access: bool = True
    licenses: frozenset[str] | None = None
    exclude_retracted: bool = True
    exclude_manuscripts: bool = False
    exclude_historical_ocr: bool = False
    require_metadata: bool = False

    def __post_init__(self):
        if self.licenses is not None:
            object.__setattr__(self, "licenses", frozenset(str(x).strip().lower() for x in self.licenses))

    def reject_reason(self, meta: dict) -> tuple[str, str] | None:
        """``(reason, detail)`` when ``meta`` must be skipped, else ``None``."""
        if self.require_open_access and not meta.get("is_pmc_openaccess", False):
            return "not_open_access", f"is_pmc_openaccess={meta.get('is_pmc_openaccess')!r}"
        if self.exclude_retracted and meta.get("is_retracted"):
            return "retracted", "is_retracted=true"
        if self.exclude_manuscripts and meta.get("is_manuscript"):
            return "manuscript", "is_manuscript=true"
        if self.exclude_historical_ocr and meta.get("is_historical_ocr"):
            return "historical_ocr", "is_historical_ocr=true"
        if self.licenses is not None:
            code = str(meta.get("license_code") or "").strip().lower()
            if code not in self.licenses:
                return "license_not_allowed", f"license_code={meta.get('license_code')!r}"
        return None
