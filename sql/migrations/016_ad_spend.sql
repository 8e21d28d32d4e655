-- Ad spend per project, day, channel and campaign, imported from spend files (POST /v1/import?table=ad_spend)
-- for attribution's cost per conversion and return on ad spend. A row is keyed by (day, channel, campaign):
-- importing a file again, or a corrected one, replaces the rows of the same keys (ReplacingMergeTree on the
-- import's version, read with FINAL), so a re-import never counts a cost twice. Not readable through ad-hoc
-- SQL (a project's spend is its own business): the attribution analysis reads it.
CREATE TABLE IF NOT EXISTS ad_spend
(
    project_id UInt32 COMMENT 'Project the spend belongs to',
    day        Date COMMENT 'Day the money was spent (the ad platform''s reporting day)',
    channel    String COMMENT 'Channel name, as the channel rules name channels (Paid search, ...)',
    campaign   String COMMENT 'Campaign name as in utm_campaign; empty for spend on the channel as a whole',
    cost       Decimal(18, 4) COMMENT 'Amount spent, in the project''s currency',
    version    UInt64 COMMENT 'Row version (the import''s time): the highest wins'
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY project_id
ORDER BY (project_id, day, channel, campaign)
COMMENT 'Ad spend per day, channel and campaign for attribution; read with FINAL';
