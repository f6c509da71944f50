"""JSON and YAML documents (rule sets, feature specs, windows, RFM boundaries) as plain data."""
import json


def parse_document(text, fmt, what, error):
    """Parse ``text`` as ``fmt`` (``"json"`` or ``"yaml"``), raising ``error`` naming ``what``.

    YAML uses ``yaml.safe_load`` (plain data only) and needs PyYAML.
    """
    if fmt == "yaml":
        try:
            import yaml
        except ImportError:
            raise ImportError(f"reading {what} as YAML needs PyYAML: pip install 'segmint[yaml]' "
                              "(or write it as JSON)") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise error(f"{what} is not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None


def read_document(path, what, error):
    """Read a ``.json``, ``.yaml`` or ``.yml`` file (anything else is read as JSON)."""
    import os

    from .errors import SourceNotFoundError
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SourceNotFoundError(f"no such file: {path!r}")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    fmt = "yaml" if path.lower().endswith((".yaml", ".yml")) else "json"
    return parse_document(text, fmt, f"{what} {path!r}", error)
