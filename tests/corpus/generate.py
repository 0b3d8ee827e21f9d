"""Deterministic generator of the CMDB-export test corpus (issue 8, item 8).

Run ``python -m tests.corpus.generate`` to rewrite the CSVs and their ground truth. Each
``<name>.csv`` is an export in one product's style; ``<name>.truth.json`` says what the
generator *meant*: the hosts (the 1-based data rows that describe each, its asset type, memory
in GB and CPU cores), the rows that identify nothing (and why), the rows that carry a
deliberate trap, and the required attributes the export genuinely has no column for. The test
derives its expected inventory from this file alone, never from the service's code.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MEMORY_GB = (2, 4, 8, 16, 32, 64, 128, 256)
CORES = (1, 2, 4, 8, 16, 32)
LONG_CELL = ("Long note about this host: " + "lorem ipsum dolor sit amet " * 120)[:3000]


@dataclass
class Host:
    key: str  # the generator's own name for the host (unique in the file)
    asset_type: str  # server, database, network_device, virtual_machine
    memory_gb: float
    cpu_cores: int
    rows: list[int] = field(default_factory=list)
    accepted_types: list[str] = field(default_factory=list)
    storage_gb: float | None = None  # None: the export has no disk column


@dataclass
class Corpus:
    name: str
    header: list[str]
    bom: bool = False
    rows: list[list[str]] = field(default_factory=list)
    hosts: dict[str, Host] = field(default_factory=dict)
    no_asset: dict[int, str] = field(default_factory=dict)
    traps: dict[int, str] = field(default_factory=dict)
    must_report: dict[int, str] = field(default_factory=dict)
    absent_required: list[str] = field(default_factory=list)

    def add(self, host: Host | None, cells: dict[str, str], trap: str = "") -> int:
        self.rows.append([cells.get(h, "") for h in self.header])
        n = len(self.rows)
        if host is not None:
            self.hosts.setdefault(host.key, host).rows.append(n)
        if trap:
            self.traps[n] = trap
            if trap.startswith(REPORTABLE):
                self.must_report[n] = trap
        return n

    def nothing(self, cells: dict[str, str], why: str) -> None:
        n = self.add(None, cells, trap=why)
        self.no_asset[n] = why

    def write(self) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(self.header)
        w.writerows(self.rows)
        data = ("\ufeff" if self.bom else "") + buf.getvalue()
        (HERE / f"{self.name}.csv").write_bytes(data.encode("utf-8"))
        truth: dict[str, Any] = {
            "file": f"{self.name}.csv",
            "row_count": len(self.rows),
            "absent_required_attributes": self.absent_required,
            "hosts": [
                {
                    "key": h.key,
                    "asset_type": h.asset_type,
                    "accepted_types": h.accepted_types or [h.asset_type],
                    "memory_gb": h.memory_gb,
                    "cpu_cores": h.cpu_cores,
                    "storage_gb": h.storage_gb,
                    "rows": h.rows,
                }
                for h in self.hosts.values()
            ],
            "rows_without_asset": {str(k): v for k, v in sorted(self.no_asset.items())},
            "trap_rows": {str(k): v for k, v in sorted(self.traps.items())},
            "rows_to_report": {str(k): v for k, v in sorted(self.must_report.items())},
        }
        (HERE / f"{self.name}.truth.json").write_text(json.dumps(truth, indent=1) + "\n")


def ip(rnd: random.Random, net: int) -> str:
    return f"10.{net}.{rnd.randint(0, 254)}.{rnd.randint(1, 254)}"


def unique_ips(rnd: random.Random, net: int, n: int) -> list[str]:
    seen: set[str] = set()
    while len(seen) < n:
        seen.add(ip(rnd, net))
    return sorted(seen)


# Traps a reader must be told about: an issue on the row (the others may pass silently).
REPORTABLE = ("serial shared", "IP shared", "name with spaces", "placeholder name with")
PLACEHOLDERS = ("unknown", "N/A", "TBD", "-")


def servicenow(rnd: random.Random) -> Corpus:
    c = Corpus(
        "servicenow_cmdb_ci",
        [
            "name", "sys_class_name", "ip_address", "os", "os_version", "cpu_count", "ram",
            "disk_space", "serial_number", "asset_tag", "assigned_to", "support_group",
            "u_environment", "sys_id",
        ],
    )  # fmt: skip
    classes = [
        ("Linux Server", "server", "Red Hat Enterprise Linux", "8.6"),
        ("Windows Server", "server", "Windows 2019 Datacenter", "10.0.17763"),
        ("Database", "database", "Oracle Linux", "7.9"),
        ("IP Switch", "network_device", "Cisco IOS", "15.2"),
    ]
    ips = unique_ips(rnd, 10, 400)
    for i in range(240):
        cls, typ, os_, ver = classes[0 if i % 5 < 2 else i % 5 - 1]
        mem = rnd.choice(MEMORY_GB)
        cpu = rnd.choice(CORES)
        name = f"sn{['lnx', 'win', 'db', 'sw'][classes.index((cls, typ, os_, ver))]}{i:03d}"
        host = Host(name, typ, mem, cpu)
        cells = {
            "name": name,
            "sys_class_name": cls,
            "ip_address": ips[i],
            "os": os_,
            "os_version": ver,
            "cpu_count": str(cpu),
            "ram": str(mem * 1024),  # ServiceNow stores RAM in MB
            "disk_space": str(disk := rnd.choice((50, 100, 250, 500, 1000))),
            "serial_number": f"SN{rnd.randrange(10**9):09d}",
            "asset_tag": f"P{100000 + i}",
            "assigned_to": rnd.choice(("Ann Lee", "Bob Stone", "")),
            "support_group": rnd.choice(("Unix Ops", "Wintel", "DBA", "Network")),
            "u_environment": rnd.choice(("Production", "Test", "Development")),
            "sys_id": f"{rnd.getrandbits(128):032x}",
        }
        host.storage_gb = disk
        trap = ""
        if i in (10, 11):  # one serial on two differently named hosts
            cells["serial_number"] = "SN-SHARED-0001"
            trap = "serial shared by two names"
        if i in (20, 21):  # one IP on two differently named hosts
            cells["ip_address"] = "10.10.10.10"
            trap = "IP shared by two names"
        if i == 30:
            cells["support_group"] = LONG_CELL
            trap = "3 KB cell"
        if i in (40, 41):  # equal short names in two domains
            cells["name"] = f"snweb01.{'corp' if i == 40 else 'lab'}.example.com"
            host.key = cells["name"]
            trap = "short name in two domains"
        c.add(host, cells, trap)
        if i == 50:  # the same host exported twice
            c.add(host, dict(cells, sys_id=f"{rnd.getrandbits(128):032x}"), "listed twice")
            c.traps[c.hosts[host.key].rows[0]] = "listed twice"
    for p in PLACEHOLDERS:  # placeholder names and nothing else that identifies
        c.nothing(
            {"name": p, "sys_class_name": "Linux Server", "os": "Red Hat Enterprise Linux",
             "cpu_count": "2", "ram": "4096"},
            f"placeholder name {p!r}, no serial, tag or IP",
        )  # fmt: skip
    # a placeholder name, but a serial and an IP: an asset of its own, and an issue
    c.add(
        Host("serial SN-ORPHAN-0001", "server", 8, 2),
        {"name": "unknown", "sys_class_name": "Linux Server", "ip_address": "10.10.200.1",
         "os": "Red Hat Enterprise Linux", "os_version": "8.6", "cpu_count": "2", "ram": "8192",
         "serial_number": "SN-ORPHAN-0001"},
        "placeholder name with a serial and an IP",
    )  # fmt: skip
    return c


def device42(rnd: random.Random) -> Corpus:
    c = Corpus(
        "device42_devices",
        [
            "device_name", "type", "ip_addresses", "os_name", "os_version", "cpucount",
            "cpucore", "ram", "ram_size_type", "hw_model", "serial_no", "service_level",
            "in_service", "tags",
        ],
    )  # fmt: skip
    ips = unique_ips(rnd, 20, 300)
    for i in range(180):
        virtual = i % 3 == 0
        mem = rnd.choice(MEMORY_GB)
        sockets = 1 if virtual else rnd.choice((1, 2))
        per = rnd.choice((1, 2, 4, 8))
        name = f"d42{'vm' if virtual else 'srv'}{i:03d}.dc1.example.net"
        host = Host(
            name,
            "virtual_machine" if virtual else "server",
            mem,
            sockets * per,
            accepted_types=["virtual_machine", "server"] if virtual else ["server"],
        )
        in_mb = i % 4 == 1
        cells = {
            "device_name": name,
            "type": "virtual" if virtual else "physical",
            "ip_addresses": ips[i],
            "os_name": rnd.choice(("Ubuntu", "CentOS Linux", "Microsoft Windows Server 2016")),
            "os_version": rnd.choice(("20.04", "7", "1607")),
            "cpucount": str(sockets),
            "cpucore": str(per),
            "ram": str(mem * 1024 if in_mb else mem),
            "ram_size_type": "MB" if in_mb else "GB",
            "hw_model": "VMware Virtual Platform" if virtual else "PowerEdge R740",
            "serial_no": f"VMware-{rnd.getrandbits(64):016x}" if virtual else f"D{i:06d}X",
            "service_level": rnd.choice(("Production", "QA", "Development")),
            "in_service": "yes",
            "tags": "",
        }
        trap = "memory in MB, unit in ram_size_type" if in_mb else ""
        if i in (5, 6, 7):  # a cloned VM template: one serial, three names
            cells["serial_no"] = "VMware-42 1a 2b 3c 4d 5e 6f 70"
            trap = "serial shared by three names"
        if i == 60:
            cells["tags"] = LONG_CELL
            trap = "3 KB cell"
        c.add(host, cells, trap)
        if i == 90:
            c.add(host, dict(cells), "listed twice")
            c.traps[c.hosts[host.key].rows[0]] = "listed twice"
    c.nothing({"device_name": "unknown", "type": "physical", "os_name": "Ubuntu"}, "placeholder")
    c.nothing({"device_name": "TBD", "type": "virtual", "ram": "8", "ram_size_type": "GB"}, "tbd")
    # cpu_cores = sockets x cores per socket; the ground truth keeps the product
    c.absent_required = []
    return c


def lansweeper(rnd: random.Random) -> Corpus:
    c = Corpus(
        "lansweeper_assets",
        [
            "AssetName", "AssetTypename", "IPAddress", "Domain", "OSname", "OSversion",
            "Processor count", "Memory (MB)", "Serialnumber", "Manufacturer", "Model",
            "Lastseen", "Description",
        ],
    )  # fmt: skip
    ips = unique_ips(rnd, 30, 400)
    types = [
        ("Windows", "server", "Win 2019", "1809"),
        ("Linux", "server", "Ubuntu 22.04", "22.04"),
        ("VMware Guest", "virtual_machine", "Win 2016", "1607"),
        ("Switch", "network_device", "", ""),
    ]
    for i in range(260):
        tname, typ, os_, ver = types[i % 4]
        mem = rnd.choice(MEMORY_GB)
        cpu = rnd.choice(CORES)
        short = f"ls{tname[:3].lower()}{i:03d}"
        domain = "corp.local" if i % 2 else "branch.local"
        key = f"{short}.{domain}"
        cells = {
            "AssetName": short.upper() if tname == "Windows" else short,
            "AssetTypename": tname,
            "IPAddress": ips[i],
            "Domain": domain.split(".")[0].upper(),
            "OSname": os_,
            "OSversion": ver,
            "Processor count": str(cpu),
            "Memory (MB)": str(mem * 1024),
            "Serialnumber": f"CZ{rnd.randrange(10**8):08d}",
            "Manufacturer": "HP",
            "Model": "ProLiant DL380 Gen10",
            "Lastseen": f"2026-10-{1 + i % 28:02d} 08:00:00",
            "Description": "",
        }
        trap = ""
        if i in (100, 101):  # equal short names in two domains
            short = "lsapp01"
            cells["AssetName"] = "LSAPP01"
            cells["Domain"] = "CORP" if i == 100 else "BRANCH"
            key = f"{short}.{cells['Domain'].lower()}.local"
            trap = "short name in two domains (Domain column)"
        if i in (110, 111):
            cells["IPAddress"] = "10.30.99.99"
            trap = "IP shared by two names"
        if i == 120:
            cells["Description"] = LONG_CELL
            trap = "3 KB cell"
        if i == 130:
            cells["AssetName"] = "KIOSK LOBBY 01"
            key = "kiosk lobby 01"
            trap = "name with spaces"
        accepted = [typ, "server"] if typ == "virtual_machine" else [typ]
        host = Host(key, typ, mem, cpu, accepted_types=accepted)
        c.add(host, cells, trap)
        if i == 140:
            c.add(host, dict(cells, Lastseen="2026-11-01 08:00:00"), "listed twice")
            c.traps[c.hosts[host.key].rows[0]] = "listed twice"
    for p in ("-", "N/A"):
        c.nothing({"AssetName": p, "AssetTypename": "Windows", "OSname": "Win 10"}, "placeholder")
    return c


def rvtools(rnd: random.Random) -> Corpus:
    c = Corpus(
        "rvtools_vinfo",
        [
            "VM", "Powerstate", "Template", "CPUs", "Memory", "Provisioned MiB", "In Use MiB",
            "OS according to the configuration file", "OS according to the VMware Tools",
            "Host", "Cluster", "Datacenter", "DNS Name", "Primary IP Address", "Annotation",
        ],
    )  # fmt: skip
    c.header[4] = "Memory (MiB)"  # RVTools 4.x spells the unit in the header
    ips = unique_ips(rnd, 40, 300)
    for i in range(220):
        mem = rnd.choice(MEMORY_GB)
        cpu = rnd.choice(CORES[:5])
        vm = f"rvvm{i:03d}"
        os_ = rnd.choice(
            (
                "Microsoft Windows Server 2019 (64-bit)",
                "Red Hat Enterprise Linux 8 (64-bit)",
                "Ubuntu Linux (64-bit)",
            )
        )
        cells = {
            "VM": vm,
            "Powerstate": rnd.choice(("poweredOn", "poweredOn", "poweredOff")),
            "Template": "False",
            "CPUs": str(cpu),
            "Memory (MiB)": str(mem * 1024),
            "Provisioned MiB": str(rnd.choice((40, 80, 200)) * 1024),
            "In Use MiB": str(rnd.randint(10, 39) * 1024),
            "OS according to the configuration file": os_,
            "OS according to the VMware Tools": os_,
            "Host": f"esx{i % 12:02d}.vc.example.org",
            "Cluster": f"CL{i % 3}",
            "Datacenter": "DC-East",
            "DNS Name": f"{vm}.apps.example.org",
            "Primary IP Address": ips[i],
            "Annotation": "",
        }
        trap = ""
        if i in (15, 16):  # VM names with spaces (display names), DNS names fine
            cells["VM"] = f"SQL Prod {i:02d}"
            trap = "VM name with spaces"
        if i == 25:
            cells["Annotation"] = LONG_CELL
            trap = "3 KB cell"
        if i in (35, 36):
            cells["Primary IP Address"] = "10.40.0.5"
            trap = "IP shared by two VMs"
        host = Host(vm, "virtual_machine", mem, cpu, accepted_types=["virtual_machine", "server"])
        c.add(host, cells, trap)
    # vInfo has no asset class column: every row is a VM by the nature of the tab
    c.absent_required = ["asset_type"]
    return c


def handmade(rnd: random.Random) -> Corpus:
    c = Corpus(
        "handmade_inventory",
        [
            " Server Name ", "IP", "Type", "OS ", "CPU Qty", "RAM GB", "Disk TB", "Env",
            "Serial #", "Notes",
        ],
        bom=True,
    )  # fmt: skip
    ips = unique_ips(rnd, 50, 200)
    kinds = [("Server", "server"), ("server", "server"), ("DB", "database"), ("VM", "server")]
    for i in range(140):
        label, typ = kinds[i % 4]
        mem = rnd.choice(MEMORY_GB)
        cpu = rnd.choice(CORES)
        name = f"HM-App{i:03d}"
        key = name.lower()
        cells = {
            " Server Name ": name + ("  " if i % 7 == 0 else ""),
            "IP": ips[i],
            "Type": label,
            "OS ": rnd.choice(("Windows Server 2012 R2", "RHEL 7", "windows 2016", "SLES 12")),
            "CPU Qty": str(cpu),
            "RAM GB": str(mem),
            "Disk TB": (disk_tb := rnd.choice(("0.5", "1", "2", "1.5"))),
            "Env": rnd.choice(("PROD", "prod", "Test", "DEV", "uat")),
            "Serial #": f"HM{i:05d}",
            "Notes": "",
        }
        trap = "trailing spaces in the name" if i % 7 == 0 else ""
        if i % 10 == 3:
            cells["RAM GB"] = f"{mem} GB"
            trap = "unit in the value"
        if i in (44, 45):
            cells["Serial #"] = "HM-DUP-1"
            trap = "serial shared by two names"
        if i == 77:
            cells["Notes"] = LONG_CELL
            trap = "3 KB cell"
        if i == 88:
            cells[" Server Name "] = "File Server Basement"
            key = "file server basement"
            trap = "name with spaces"
        accepted = ["virtual_machine", "server"] if label == "VM" else [typ]
        host = Host(key, typ, mem, cpu, accepted_types=accepted)
        host.storage_gb = float(disk_tb) * 1024  # TiB or TB: the test allows 5 %
        c.add(host, cells, trap)
        if i == 60:  # the same host typed again with different case
            c.add(host, dict(cells, **{" Server Name ": name.upper()}), "listed twice")
            c.traps[c.hosts[host.key].rows[0]] = "listed twice"
    for p in PLACEHOLDERS:
        c.nothing({" Server Name ": p, "Type": "Server", "RAM GB": "8"}, "placeholder name")
    return c


def main() -> None:
    for build in (servicenow, device42, lansweeper, rvtools, handmade):
        build(random.Random(f"flowpair-corpus-{build.__name__}")).write()


if __name__ == "__main__":
    main()
