-- Channel rules per project: how a session's entry source (UTM tags, referrer class and domain) becomes a
-- marketing channel for attribution, and whether direct visits give way to other touches ("last non-direct").
-- One record per project, the metadata pattern of 004, 009 and 012: ReplacingMergeTree(version, is_deleted),
-- each change a whole new version, read with FINAL. A project without a record uses the default rules
-- (nexus/meta/channels.py). Not readable through ad-hoc SQL: GET /v1/channels shows them.
CREATE TABLE IF NOT EXISTS channel_rules
(
    project_id      UInt32 COMMENT 'Project the rules belong to',
    rules           String COMMENT 'JSON list of rules in order, the first match wins: [{"channel", "when": [{"field", "op", "values"}]}] (ChannelRule in nexus/meta/channels.py)',
    last_non_direct UInt8 COMMENT '1: a direct touch gets no credit when another touch lies in the lookback',
    direct_channel  String COMMENT 'The channel whose touches are direct visits (for last_non_direct)',
    updated_by      String COMMENT 'Id of the API key that last changed the rules',
    updated_at      DateTime64(3, 'UTC') COMMENT 'When the rules were last changed',
    version         UInt64 COMMENT 'Row version: the highest wins',
    is_deleted      UInt8 DEFAULT 0 COMMENT '1 when the rules were reset to the defaults'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY project_id
ORDER BY project_id
COMMENT 'Channel rules per project for attribution; read with FINAL';
