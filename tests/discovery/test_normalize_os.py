"""Operating systems as real inventories spell them (vocab/operating_systems.json)."""

from __future__ import annotations

import pytest

from discovery_svc.normalize.os import OsInfo, merge_version, normalize_os


@pytest.mark.parametrize(
    ("raw", "family", "name", "version"),
    [
        # RHEL family, kernel-style releases included.
        ("Red Hat Enterprise Linux 8 (kernel 4.18.0-513.el8_9.x86_64)", "linux", "RHEL", "8.9"),
        ("4.18.0-513.el8_9.x86_64", "linux", "RHEL", "8.9"),
        ("3.10.0-1160.el7.x86_64", "linux", "RHEL", "7"),
        ("RHEL el8_9", "linux", "RHEL", "8.9"),
        ("Red Hat Enterprise Linux Server release 7.9 (Maipo)", "linux", "RHEL", "7.9"),
        ("Linux Red Hat", "linux", "RHEL", ""),
        ("CentOS 7 (3.10.0-1160.el7.x86_64)", "linux", "CentOS", "7"),
        ("CentOS Stream 9", "linux", "CentOS", "9"),
        ("Rocky Linux 9.2 (Blue Onyx)", "linux", "Rocky Linux", "9.2"),
        ("AlmaLinux 8.8", "linux", "AlmaLinux", "8.8"),
        ("OL8", "linux", "Oracle Linux", "8"),
        # Amazon Linux, however the cloud inventory writes it.
        ("Linux Amazon AL2", "linux", "Amazon Linux", "2"),
        ("Amazon Linux 2", "linux", "Amazon Linux", "2"),
        ("Amazon Linux 2023", "linux", "Amazon Linux", "2023"),
        ("Amazon Linux 2 AMI (HVM)", "linux", "Amazon Linux", "2"),
        ("amzn2", "linux", "Amazon Linux", "2"),
        ("AL2023", "linux", "Amazon Linux", "2023"),
        # SUSE with service packs.
        ("SLES 15 SP4", "linux", "SUSE", "15 SP4"),
        ("SLES12SP3", "linux", "SUSE", "12 SP3"),
        ("SUSE Linux Enterprise Server 12 SP5 (64-bit)", "linux", "SUSE", "12 SP5"),
        ("SUSE Linux Enterprise Server for SAP Applications 15 SP3", "linux", "SUSE", "15 SP3"),
        ("Ubuntu 22.04.3 LTS", "linux", "Ubuntu", "22.04"),
        ("Ubuntu Linux (64-bit)", "linux", "Ubuntu", ""),
        # Windows client and server editions.
        ("Microsoft Windows 10 Enterprise", "windows", "Windows", "10"),
        ("Windows 11 Pro", "windows", "Windows", "11"),
        ("Windows 7 SP1", "windows", "Windows", "7 SP1"),
        ("Windows XP Professional Service Pack 3", "windows", "Windows", "XP SP3"),
        ("Microsoft Windows Server 2019 Datacenter", "windows", "Windows Server", "2019"),
        ("Microsoft Windows Server 2022 Standard", "windows", "Windows Server", "2022"),
        ("Windows 2008 R2 Enterprise", "windows", "Windows Server", "2008 R2"),
        ("Windows Server 2008 SP2", "windows", "Windows Server", "2008 SP2"),
        ("Microsoft Windows Server 2003, Enterprise Edition", "windows", "Windows Server", "2003"),
        ("Win2k12R2", "windows", "Windows Server", "2012 R2"),
        ("Windows NT 4.0", "windows", "Windows NT", "4.0"),
        ("Microsoft Windows Server 2016 (64-bit)", "windows", "Windows Server", "2016"),
        # macOS, ESXi, AIX, Solaris.
        ("macOS 13.4 Ventura", "macos", "macOS", "13.4"),
        ("Mac OS X 10.15.7", "macos", "macOS", "10.15.7"),
        ("macOS Sonoma 14.1", "macos", "macOS", "14.1"),
        ("VMware ESXi 7.0.3 build-20328353", "esxi", "ESXi", "7.0.3"),
        ("VMware ESXi 8.0 Update 2", "esxi", "ESXi", "8.0"),
        ("ESX 6.5", "esxi", "ESXi", "6.5"),
        ("AIX 7.2 TL5", "unix", "AIX", "7.2"),
        ("AIX 7200-05-03-2148", "unix", "AIX", "7.2"),
        ("IBM AIX 7.1", "unix", "AIX", "7.1"),
        ("SunOS 5.11", "unix", "Solaris", "11"),
        ("SunOS 5.10", "unix", "Solaris", "10"),
        ("Oracle Solaris 11.4", "unix", "Solaris", "11.4"),
        ("Solaris 10 (SPARC)", "unix", "Solaris", "10"),
        ("HP-UX B.11.31", "unix", "HP-UX", "11.31"),
        # Network operating systems keep their own version spelling.
        ("Cisco IOS 15.2(4)E8", "network", "Cisco IOS", "15.2(4)E8"),
        ("Cisco IOS Software, Version 15.1(2)SG7", "network", "Cisco IOS", "15.1(2)SG7"),
        ("Cisco IOS XE 17.3.4a", "network", "Cisco IOS XE", "17.3.4a"),
        ("Cisco IOS XR 7.5.2", "network", "Cisco IOS XR", "7.5.2"),
        ("Cisco NX-OS 9.3(8)", "network", "Cisco NX-OS", "9.3(8)"),
        ("Junos 20.4R3-S2", "network", "Junos", "20.4R3-S2"),
        ("JUNOS 18.4R2.7", "network", "Junos", "18.4R2.7"),
        ("PAN-OS 10.1.6", "network", "PAN-OS", "10.1.6"),
        ("FortiOS 7.0.12", "network", "FortiOS", "7.0.12"),
        ("Arista EOS 4.28.3M", "network", "Arista EOS", "4.28.3M"),
        ("F5 BIG-IP 16.1.3", "network", "F5 TMOS", "16.1.3"),
        ("Cisco ASA Software 9.16(4)", "network", "Cisco ASA", "9.16(4)"),
    ],
)
def test_operating_systems(raw: str, family: str, name: str, version: str) -> None:
    assert normalize_os(raw) == (OsInfo(family, name, version), None)


@pytest.mark.parametrize(
    ("parsed", "column", "merged"),
    [
        ("15 SP4", "15", "15 SP4"),
        ("15", "SP4", "15 SP4"),
        ("15", "sp 4", "15 SP4"),
        ("15", "15 SP4", "15 SP4"),
        ("2008", "Service Pack 2", "2008 SP2"),
        ("12 SP3", "SP5", "12 SP5"),
        ("", "8.6", "8.6"),
        ("8", "8.9", "8.9"),
        ("8.6", "8.9", "8.9"),
        ("", "SP2", "SP2"),
    ],
)
def test_a_version_column_merges_without_losing_service_packs(
    parsed: str, column: str, merged: str
) -> None:
    assert merge_version(parsed, column) == merged
