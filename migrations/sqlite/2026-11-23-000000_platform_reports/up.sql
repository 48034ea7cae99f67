-- Reports of remote accounts filed by platform users (`report.created`), and what became
-- of each: kept here only, forwarded to the account's server as a Flag, or withheld
-- because the operator rejects that server.
CREATE TABLE platform_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id TEXT NOT NULL UNIQUE,
    -- The platform's reporter; never sent to another server.
    reporter_user_id TEXT NOT NULL,
    target_actor TEXT NOT NULL,
    object_urls TEXT NOT NULL DEFAULT '[]',
    comment TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL CHECK (state IN ('kept', 'forwarded', 'withheld')),
    flag_ap_id TEXT,
    created_at BIGINT NOT NULL
);
