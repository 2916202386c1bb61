"""The JUnit XML report of ``rollouts wait --junit`` / ``create --wait --junit``, for CI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_junit"]


def write_junit(
    path: Path, docs: list[dict[str, Any]], min_reward: float | None, timed_out: set[str]
) -> None:
    """One testcase per rollout: a failure when it did not succeed or scored below the bar."""
    import xml.etree.ElementTree as ET

    from envpools_cli.models import RolloutStatus

    suite = ET.Element("testsuite", name="envpools", tests=str(len(docs)))
    failures = errors = 0
    total_time = 0.0
    for doc in docs:
        usage = doc.get("usage") or {}
        seconds = float(usage.get("wall_time_sec") or 0.0)
        total_time += seconds
        task = doc.get("task_ref") or {}
        agent = doc.get("agent") or {}
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{task.get('dataset', 'rollouts')}",
            name=f"{task.get('task_id', doc.get('rollout_id'))} [{agent.get('harness', '?')}] "
            f"{doc.get('rollout_id')}",
            time=f"{seconds:.3f}",
        )
        props = ET.SubElement(case, "properties")
        for name in ("rollout_id", "status", "reward_primary", "pool_id"):
            ET.SubElement(props, "property", name=name, value=str(doc.get(name)))
        status = str(doc.get("status"))
        reward = doc.get("reward_primary")
        if doc.get("rollout_id") in timed_out:
            errors += 1
            ET.SubElement(
                case, "error", type="timeout", message=f"still {status} when the wait timed out"
            )
        elif not RolloutStatus.succeeded(doc.get("status")):
            failures += 1
            error = doc.get("error") or {}
            failure = ET.SubElement(
                case,
                "failure",
                type=str(error.get("code") or status),
                message=f"rollout {status}: {error.get('message', '')}",
            )
            failure.text = str(error)
        elif min_reward is not None and (
            not isinstance(reward, int | float) or reward < min_reward
        ):
            failures += 1
            ET.SubElement(
                case,
                "failure",
                type="low_reward",
                message=f"reward {reward} below --min-reward {min_reward}",
            )
        ET.SubElement(
            case, "system-out"
        ).text = f"rollout {doc.get('rollout_id')} status={status} reward={reward}"
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("time", f"{total_time:.3f}")
    root = ET.Element("testsuites")
    root.append(suite)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
