"""Pure SPIFFE identity logic: IDs, trust domains, ID formats and their Go templates.

No YAML, no kpt: everything here takes and returns plain Python values.
"""
