"""The entry point `pulumi preview --policy-pack policies` runs. It only assembles the pack:
PolicyPack's constructor starts the analyzer server and blocks.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from meshstack.policies.pack import PACK_NAME, policies

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.ADVISORY, policies=policies())
