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
    delimiter: str = ","
    quote_all: bool = False  # PowerShell's Export-Csv quotes every field
    preamble: str = ""  # lines before the header (e.g. a blank line Excel kept)
    trailer: str = ""  # lines after the last row (e.g. Excel's separator-only rows)

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
        w = csv.writer(
            buf,
            lineterminator="\r\n",
            delimiter=self.delimiter,
            quoting=csv.QUOTE_ALL if self.quote_all else csv.QUOTE_MINIMAL,
        )
        w.writerow(self.header)
        w.writerows(self.rows)
        body = self.preamble + buf.getvalue() + self.trailer
        data = ("\ufeff" if self.bom else "") + body
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


# --- held-out styles (not tuned against): SCCM/MECM, PowerCLI Get-VM, a German Excel sheet ---


def sccm(rnd: random.Random) -> Corpus:
    """An SCCM/MECM hardware-inventory report (SSRS 'Export to CSV': UTF-8 with BOM). Memory is
    Win32_ComputerSystem.TotalPhysicalMemory in KB (a little under the installed size);
    'Number of Processors' counts sockets and 'Number Of Cores' is Win32_Processor.NumberOfCores,
    the cores of one processor: the machine's cores are their product. No class column: a
    workstation or a server only by its OS caption ('NT Workstation' / 'NT Server')."""
    c = Corpus(
        "sccm_hardware_inventory",
        [
            "Name0", "Resource Domain OR Workgroup", "Operating System Name and Version",
            "IP Address", "Total Physical Memory (KB)", "Number of Processors",
            "Number Of Cores", "Serial Number", "Manufacturer0", "Model0",
            "Last Logon User Name", "Last Hardware Scan", "Client Version",
        ],
        bom=True,
    )  # fmt: skip
    ips = unique_ips(rnd, 60, 400)
    users = ("jdoe", "asmith", "mmueller", "kwong", "")
    for i in range(200):
        kind = ("ws", "ws", "srv", "vm", "ws")[i % 5]
        domain = ("CORP", "CORP", "EMEA")[i % 3]
        if kind == "ws":
            name = f"PC{i:04d}"
            os_ = rnd.choice(
                ("Microsoft Windows NT Workstation 10.0", "Microsoft Windows NT Workstation 6.1")
            )
            mem, sockets, per = rnd.choice((8, 16, 32)), 1, rnd.choice((2, 4, 6))
            make, model = rnd.choice(
                (
                    ("Dell Inc.", "OptiPlex 7070"),
                    ("LENOVO", "20L5CTO1WW"),
                    ("HP", "EliteBook 840 G5"),
                )
            )
            serial = f"{rnd.getrandbits(28):07X}"
            typ, accepted = "end_user_computer", ["end_user_computer"]
        elif kind == "srv":
            name = f"SRV{i:04d}"
            os_ = rnd.choice(
                ("Microsoft Windows NT Server 10.0", "Microsoft Windows NT Advanced Server 10.0",
                 "Microsoft Windows NT Server 6.3")
            )  # fmt: skip
            mem, sockets, per = rnd.choice((64, 128, 256)), 2, rnd.choice((8, 12, 16))
            make, model = "HPE", "ProLiant DL380 Gen10"
            serial = f"CZJ{rnd.randrange(10**7):07d}"
            typ, accepted = "server", ["server"]
        else:
            name = f"VSRV{i:04d}"
            os_ = rnd.choice(
                ("Microsoft Windows NT Server 10.0", "Microsoft Windows NT Server 6.3")
            )
            mem, sockets, per = rnd.choice((4, 8, 16, 32)), rnd.choice((1, 2, 4)), 1
            make, model = "VMware, Inc.", rnd.choice(("VMware Virtual Platform", "VMware7,1"))
            b = rnd.getrandbits(128).to_bytes(16, "big").hex()
            serial = (
                "VMware-"
                + " ".join(b[k : k + 2] for k in range(0, 16, 2))
                + "-"
                + " ".join(b[k : k + 2] for k in range(16, 32, 2))
            )
            typ, accepted = "virtual_machine", ["virtual_machine", "server"]
        key = f"{name.lower()}.{domain.lower()}"
        kb = mem * 1024 * 1024 - rnd.randint(0, mem * 1024 * 1024 // 60)  # reserved memory
        cells = {
            "Name0": name,
            "Resource Domain OR Workgroup": domain,
            "Operating System Name and Version": os_,
            "IP Address": ips[i],
            "Total Physical Memory (KB)": str(kb),
            "Number of Processors": str(sockets),
            "Number Of Cores": str(per),
            "Serial Number": serial,
            "Manufacturer0": make,
            "Model0": model,
            "Last Logon User Name": f"{domain}\\{u}" if (u := rnd.choice(users)) else "",
            "Last Hardware Scan": f"11/{1 + i % 25}/2026 {1 + i % 12}:{i % 60:02d}:00 AM",
            "Client Version": "5.00.9106.1000",
        }
        trap = ""
        if i in (20, 21):  # one server name in two AD domains: two machines
            cells["Name0"] = name = "SRVAPP01"
            cells["Resource Domain OR Workgroup"] = domain = "CORP" if i == 20 else "EMEA"
            key = f"srvapp01.{domain.lower()}"
            trap = "short name in two domains (domain column)"
        if i in (30, 31):  # a workgroup machine and a domain member, both named like a PC
            cells["Resource Domain OR Workgroup"] = "WORKGROUP" if i == 30 else domain
        if i in (40, 41):  # two workstations behind one IP (VPN pool address reused)
            cells["IP Address"] = "10.60.250.10"
            trap = "IP shared by two names"
        if i % 17 == 5:  # the client reports IPv4 and IPv6 in one cell
            cells["IP Address"] = f"{ips[i]}, fe80::{rnd.getrandbits(16):x}:{rnd.getrandbits(16):x}"
            trap = trap or "IPv4 and IPv6 in one cell"
        host = Host(key, typ, mem, sockets * per, accepted_types=accepted)
        c.add(host, cells, trap)
        if i == 50:  # the machine re-imaged: an obsolete client record beside the new one
            c.add(
                host, dict(cells, **{"Last Hardware Scan": "3/2/2025 9:00:00 AM"}), "listed twice"
            )
            c.traps[c.hosts[host.key].rows[0]] = "listed twice"
    # SCCM's built-in records for unknown-computer support: not machines
    for n in (
        "x64 Unknown Computer (x64 Unknown Computer)",
        "x86 Unknown Computer (x86 Unknown Computer)",
    ):
        c.nothing({"Name0": n, "Client Version": "5.00.9106.1000"}, "SCCM unknown-computer record")
    c.nothing({"Name0": "Unknown", "Resource Domain OR Workgroup": "CORP"}, "placeholder name")
    # no class column: the type is known only from the OS caption and the model
    c.absent_required = ["asset_type"]
    return c


def powercli(rnd: random.Random) -> Corpus:
    """`Get-VM | Select ... | Export-Csv -NoTypeInformation` from PowerCLI: every field quoted,
    MemoryGB with decimals, NumCpu the total vCPUs (CoresPerSocket only groups them), VMHost the
    ESXi host's FQDN (not the VM's), Notes with commas and newlines, IPAddress joined from
    Guest.IPAddress (IPv6 too)."""
    c = Corpus(
        "powercli_get_vm",
        [
            "Name", "PowerState", "Notes", "Guest", "NumCpu", "CoresPerSocket", "MemoryMB",
            "MemoryGB", "VMHost", "Folder", "ResourcePool", "UsedSpaceGB", "ProvisionedSpaceGB",
            "IPAddress", "Version", "Id",
        ],
        quote_all=True,
    )  # fmt: skip
    ips = unique_ips(rnd, 70, 300)
    oses = (
        "Microsoft Windows Server 2019 (64-bit)",
        "Microsoft Windows Server 2016 or later (64-bit)",
        "Red Hat Enterprise Linux 8 (64-bit)",
        "Ubuntu Linux (64-bit)",
    )
    sizing: dict[int, tuple[float, int, int, float, str]] = {}
    for i in range(190):
        name = f"{rnd.choice(('app', 'web', 'sql', 'dc', 'fs'))}-{i:03d}"
        mem = rnd.choice((0.5, 1, 2, 4, 8, 12, 16, 24, 32, 64))
        cpu = rnd.choice((1, 2, 4, 6, 8, 16))
        cps = rnd.choice([d for d in (1, 2, 4) if cpu % d == 0])
        prov = rnd.choice((40, 60, 100, 250, 500)) + mem  # disks plus the swap file
        os_ = rnd.choice(oses)
        if i == 91:  # the same template in another folder: one sizing, as cloned
            mem, cpu, cps, prov, os_ = sizing[90]
        sizing[i] = (mem, cpu, cps, prov, os_)
        cells = {
            "Name": name,
            "PowerState": rnd.choice(("PoweredOn", "PoweredOn", "PoweredOff")),
            "Notes": "",
            "Guest": f"{name}:{os_}",  # what Export-Csv writes for the Guest object
            "NumCpu": str(cpu),
            "CoresPerSocket": str(cps),
            "MemoryMB": str(int(mem * 1024)),
            "MemoryGB": f"{mem:.2f}",
            "VMHost": f"esx{i % 9:02d}.vi.example.com",
            "Folder": rnd.choice(
                ("Production", "Test", "Infrastructure", "Discovered virtual machine")
            ),
            "ResourcePool": "Resources",
            "UsedSpaceGB": f"{prov * rnd.uniform(0.2, 0.9):.13f}",
            "ProvisionedSpaceGB": f"{prov + rnd.random() / 1000:.13f}",
            "IPAddress": ips[i],
            "Version": "v19",
            "Id": f"VirtualMachine-vm-{1000 + i}",
        }
        trap = ""
        if i % 4 == 1:
            cells["Notes"] = rnd.choice(
                ("Owner: J. Doe, App Team\nCreated by vRA", "Patch group B, reboot Sundays",
                 "Ticket CHG0012345; do not power off, ask Ops")
            )  # fmt: skip
        if i % 11 == 3:
            cells["IPAddress"] = f"{ips[i]},fe80::250:56ff:fe9a:{i:x}"
            trap = "IPv4 and IPv6 joined in one cell"
        if i % 23 == 7:  # powered off, no VMware Tools: no IP, Guest has only the name
            cells["PowerState"] = "PoweredOff"
            cells["IPAddress"] = ""
            cells["Guest"] = f"{name}:"
            trap = "no guest OS reported"
        if i in (60, 61, 62):  # clones left on the same static IP
            cells["IPAddress"] = "10.70.0.50"
            trap = "IP shared by three names"
        if i in (90, 91):
            # The same VM name in two folders (two Ids). Identity is by name (identity.py):
            # one asset, whose rows' differing IPs are reported. A source-id key would split
            # them, and would split a CMDB's duplicate CIs of one server too.
            cells["Name"] = name = "template-test"
            cells["Guest"] = f"{name}:{os_}"
            cells["Folder"] = "Test" if i == 90 else "Archive"
            trap = "one VM name in two folders"
        if i == 120:
            cells["Notes"] = LONG_CELL
            trap = "3 KB cell"
        key = name
        storage = round(prov, 3)
        host = Host(key, "virtual_machine", mem, cpu, accepted_types=["virtual_machine", "server"])
        host.storage_gb = storage
        c.add(host, cells, trap)
    # Get-VM has no class column: every row is a VM by the nature of the command
    c.absent_required = ["asset_type"]
    return c


def excel_de(rnd: random.Random) -> Corpus:
    """A server list kept in Excel (German locale) and saved as 'CSV UTF-8': semicolons, BOM,
    decimal commas and thousands dots, a blank line above the header, Excel's separator-only
    rows at the end, German headers, 'k.A.' for unknown values, exact repeats and names
    typed twice in other case."""
    c = Corpus(
        "excel_de_serverliste",
        [
            "Servername", "IP-Adresse", "Typ", "Betriebssystem", "vCPU", "RAM (GB)",
            "Disk (GB)", "Umgebung", "Verantwortlich", "Bemerkung",
        ],
        bom=True,
        delimiter=";",
        preamble="\r\n",
        trailer=";;;;;;;;;\r\n;;;;;;;;;\r\n",
    )  # fmt: skip
    ips = unique_ips(rnd, 80, 300)
    kinds = (("physisch", "server"), ("virtuell", "virtual_machine"), ("VM", "virtual_machine"))

    def de(x: float, places: int) -> str:
        return f"{x:,.{places}f}".replace(",", "X").replace(".", ",").replace("X", ".")

    for i in range(170):
        label, typ = kinds[i % 3]
        name = f"srv-{rnd.choice(('fra', 'muc', 'ham'))}-{rnd.choice(('app', 'web', 'db'))}{i:03d}"
        mem = rnd.choice((2, 4, 8, 15.5, 16, 32, 64, 0.5))
        cpu = rnd.choice((1, 2, 4, 8, 16))
        disk = rnd.choice((80, 100, 500, 1024, 2048, 1536))
        cells = {
            "Servername": name,
            "IP-Adresse": ips[i],
            "Typ": label,
            "Betriebssystem": rnd.choice(
                ("Windows Server 2019", "Windows Server 2016", "RHEL 8", "SLES 15 SP4")
            ),
            "vCPU": str(cpu),
            "RAM (GB)": de(mem, 1) if mem != int(mem) else str(int(mem)),
            "Disk (GB)": de(disk, 2),
            "Umgebung": rnd.choice(("PROD", "PROD", "ABN", "TEST", "ENTW")),
            "Verantwortlich": rnd.choice(("Müller, Jörg", "Weiß, Anna", "Team Infrastruktur")),
            "Bemerkung": "",
        }
        trap = ""
        if i % 9 == 4:
            cells["Betriebssystem"] = "k.A."  # 'keine Angabe': unknown, like n/a
        if i % 13 == 6:
            cells["IP-Adresse"] = "k.A."
        if i % 10 == 2:
            cells["Bemerkung"] = "Migration geplant; Abstimmung mit Fachbereich"
        if i == 55:
            cells["Bemerkung"] = LONG_CELL
            trap = "3 KB cell"
        accepted = ["virtual_machine", "server"] if typ == "virtual_machine" else [typ]
        host = Host(name, typ, mem, cpu, accepted_types=accepted)
        host.storage_gb = float(disk)
        c.add(host, cells, trap)
        if i in (20, 70, 120):  # the row copied and pasted again: an exact repeat
            c.add(host, dict(cells), "exact repeat")
            c.traps[c.hosts[host.key].rows[0]] = "exact repeat"
        if i in (33, 99):  # typed again by someone else, in upper case
            c.add(host, dict(cells, Servername=name.upper()), "listed twice in other case")
            c.traps[c.hosts[host.key].rows[0]] = "listed twice in other case"
    for p in ("?", "n/a", "k.A."):
        c.nothing(
            {"Servername": p, "Typ": "VM", "RAM (GB)": "8", "Umgebung": "TEST"}, "placeholder"
        )
    return c


def main() -> None:
    for build in (servicenow, device42, lansweeper, rvtools, handmade, sccm, powercli, excel_de):
        build(random.Random(f"flowpair-corpus-{build.__name__}")).write()


if __name__ == "__main__":
    main()
