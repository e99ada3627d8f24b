"""spiffe-access: Kubernetes RBAC, the apiserver's JWT authenticators and secrets-manager policy
from the package's AccessGrants. The model is in ``grants``, the body in ``function``; see
README.md beside this file."""

from .function import access, main

__all__ = ["access", "main"]
