print("VMTEST-FIGURE placeholder")
