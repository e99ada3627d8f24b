"""spiffe-access: Kubernetes RBAC, the apiserver's JWT authenticators and secrets-manager policy
from the package's AccessGrants (see grants.py for the model, README.md beside this file)."""
