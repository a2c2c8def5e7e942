"""ImportVirtualSystem, ported from the C# sample of the reference page
(Msvm_VirtualSystemManagementService.ImportVirtualSystem) to Python over pywbem.

Usage: python import_virtual_system_cs.py importDirectory generateNewID
(generateNewID: true|false). Like the original, it prints its messages and returns exit
status 0 whatever happened (a void Main), except when it dies of an unhandled error (1).
"""

from __future__ import annotations

from samples_common import ReturnCode, connect, get_service_object, job_completed, run_csharp


def import_virtual_system(import_directory: str, generate_new_id: str) -> None:
    conn = connect()
    service = get_service_object(conn, "Msvm_VirtualSystemManagementService")
    # As in the original, GenerateNewID is passed as the text given; the service converts it.
    rv, out = conn.InvokeMethod("ImportVirtualSystem", service.path,
                                Params=[("GenerateNewID", generate_new_id),
                                        ("ImportDirectory", import_directory)])
    if rv == ReturnCode.Started:
        if job_completed(conn, out):
            print("VM were imported successfully.")
        else:
            print("Failed to import VM")
    elif rv == ReturnCode.Completed:
        print("VM were imported successfully.")
    else:
        print(f"Import virtual system failed with error {rv}")


def main(args: list[str]) -> None:
    if len(args) != 2:
        print("Usage: ImportVirtualSystem importDirectory generateNewID")
        print("generateNewID:true|false")
        return
    import_virtual_system(args[0], args[1])


if __name__ == "__main__":
    run_csharp(main)
