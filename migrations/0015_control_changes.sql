-- Replicas hear of a change to the maintenance windows or the pause switch at once
-- (`NOTIFY medic_control`, sent when the changing transaction commits) instead of reading and
-- compiling every window every second; a slow safety poll stays for a lost connection.
CREATE FUNCTION medic_control_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('medic_control', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER maintenance_windows_changed AFTER INSERT OR UPDATE OR DELETE ON maintenance_windows
    FOR EACH STATEMENT EXECUTE FUNCTION medic_control_changed();
CREATE TRIGGER remediation_pause_changed AFTER INSERT OR UPDATE OR DELETE ON remediation_pause
    FOR EACH STATEMENT EXECUTE FUNCTION medic_control_changed();
