-- One row that /health rewrites after a failed write, to learn whether writes commit again.
CREATE TABLE health_probe (
    id         INTEGER PRIMARY KEY,
    written_at BIGINT  NOT NULL
);
