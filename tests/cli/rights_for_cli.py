"""An app's declared permissions, for ``authdemo role create --permissions-from``."""

from authdemo import Permission

PERMISSIONS = [Permission("notes:read", "Read notes"), Permission("notes:write", "Write notes")]
NOT_A_LIST = "notes:write"
