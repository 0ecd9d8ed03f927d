"""`vaccel info [ADDR]`: plugins and ops, here or on an agent.

Without an address it lists the plugins this process loads (VACCEL_PLUGINS) and their
ops. Under the rpc plugin, or given ADDR, it asks the agent (`agent.info`) what it
really serves: its plugins and their ops, its version and its limits.
"""

from __future__ import annotations

from typing import Any

from vaccel.catalogue import CATALOGUE
from vaccel.client.credentials import tool_client
from vaccel.enums import OpType, PluginType
from vaccel.errors import VaccelError


def agent_info(address: str, timeout: float = 10.0) -> dict[str, Any]:
    """The agent's answer to `agent.info`."""
    client = tool_client(address, timeout)
    try:
        answer: dict[str, Any] = client.call("agent.info", [], timeout=timeout)
    finally:
        client.close()
    return answer


def _op_line(number: int) -> str:
    try:
        spec = CATALOGUE[OpType(number)]
    except (ValueError, KeyError):
        return f"  op {number:<17} (unknown to this client)"
    return f"  {spec.method:<20} {spec.title}"


def _type_text(value: int) -> str:
    try:
        return repr(PluginType(value))
    except ValueError:
        return str(value)


def _size(n: Any) -> str:
    if isinstance(n, int) and n >= 1 << 10:
        for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
            if n >= 1 << shift and n % (1 << shift) == 0:
                return f"{n >> shift}{unit}"
            if n >= 1 << shift:
                return f"{n / (1 << shift):.1f}{unit}"
    return str(n)


def print_agent(address: str, info: dict[str, Any]) -> None:
    """Print what `agent_info` answered."""
    print(f"agent {address}: {info.get('agent', '?')} (pyvaccel {info.get('version', '?')})")
    plugins = info.get("plugins", [])
    if not plugins:
        print("  no plugins loaded on the agent: every call will fail")
    for entry in plugins:
        name, type_, ops = entry[0], entry[1], entry[2]
        version = f", version {entry[3]}" if len(entry) > 3 else ""
        print(f"plugin {name} ({_type_text(int(type_))}{version})")
        for number in ops:
            print(_op_line(int(number)))
    processes = int(info.get("processes", 1))
    each = f" (each of its {processes} worker processes)" if processes > 1 else ""
    print(f"limits{each}:")
    for key, value in info.get("limits", {}).items():
        if key.endswith("timeout"):
            shown = f"{value:g} s"
        elif key.endswith(("memory", "message", "frame", "rate")):
            shown = _size(value)
        else:
            shown = str(value)
        print(f"  {key:<24} {shown}")


def _local(runtime: Any, skip: list[Any]) -> None:
    for plugin, ops in runtime.operations():
        if plugin in skip:
            continue
        print(f"plugin {plugin.display_name} ({plugin.type!r}, version {plugin.version})")
        for op in ops:
            print(f"  {CATALOGUE[op].method:<20} {CATALOGUE[op].title}")


def info(address: str | None, timeout: float = 10.0) -> int:
    """`vaccel info [ADDR]`; 1 if an agent could not be asked."""
    if address:
        print_agent(address, agent_info(address, timeout))
        return 0
    from vaccel.runtime import default_runtime

    runtime = default_runtime()
    if not runtime.plugins:
        print("no plugins loaded (set VACCEL_PLUGINS, e.g. VACCEL_PLUGINS=numpy)")
        return 0
    remote = [p for p in runtime.plugins if getattr(p, "name", "") == "rpc"]
    _local(runtime, remote)
    if not remote:
        return 0
    code = 0
    addresses = [a.strip() for a in runtime.config.rpc_address.split(",") if a.strip()]
    for plugin in remote:
        print(f"plugin {plugin.display_name} forwards to {', '.join(addresses)}")
    for address in addresses:
        try:
            print_agent(address, agent_info(address, timeout))
        except VaccelError as exc:
            print(f"agent {address}: cannot ask it: {exc}")
            code = 1
    return code
