"""One conversation per (firm, phone): upsert, relink, bump; the sendable decision's codes and
notices; the message and conversation JSON shapes."""
