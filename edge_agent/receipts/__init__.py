"""Receipts for the member at the till: what one says (`model`), its layout on an 80 mm
roll (`layout`), the ESC/POS bytes a thermal printer takes (`escpos`), and the printers
themselves on a serial line or the network (`printer`). Pure but for `printer`."""
