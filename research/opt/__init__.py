"""Network optimisation: which option answers each capture, chosen per capture by a policy.

The options (cut and link, image format, on board) come from the evaluation schemes with their
measured accuracy, bytes and FLOPs (:mod:`research.opt.options`); a satellite's view of its next
contacts comes from the contact plan (:mod:`research.opt.outlook`); policies are registered
strategies (:mod:`research.opt.policies`: ``fixed``, ``greedy``, ``priced``;
:mod:`research.opt.oracle`: the offline LP bound ``oracle``, minimising energy or mean latency). The simulators that play them
are :func:`research.eval.evaluate.simulate_policy` (per capture, over the evaluation schemes) and
:class:`research.serving.policy.PolicyRouter` (per request, over the serving schemes).
"""

from research.opt.options import Option, OptionBank, UnreachableFloorError
from research.opt.oracle import OfflineBound, OraclePolicy, offline_bound
from research.opt.outlook import DownlinkOutlook, ground_cells
from research.opt.policies import (
    FixedPolicy,
    GreedyPolicy,
    Policy,
    PolicyContext,
    PricedGreedyPolicy,
    build_policy,
    list_policies,
    parse_policy_section,
    policy_class,
    register_policy,
)

__all__ = [
    "DownlinkOutlook",
    "FixedPolicy",
    "GreedyPolicy",
    "OfflineBound",
    "Option",
    "OptionBank",
    "OraclePolicy",
    "Policy",
    "PolicyContext",
    "PricedGreedyPolicy",
    "UnreachableFloorError",
    "build_policy",
    "ground_cells",
    "list_policies",
    "offline_bound",
    "parse_policy_section",
    "policy_class",
    "register_policy",
]
