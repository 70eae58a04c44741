-- corecast calls store for Tarantool 2.6+.
--
-- Space `calls {id uuid, owner, created_at, router, participants[]}` where router is
-- {id, address, admin} and each participant is
-- {participant_id, user_id, role, joined_at, audio_muted, video_muted} (the last two absent
-- in records written before corecast_mute existed: read as false);
-- every change is one
-- stored procedure (atomic: no yield between read and write, wrapped in box.atomic).
-- Each mutating procedure takes a deadline (Unix ms): a request that reaches the server
-- after its client gave up is refused instead of applied late.
--
-- Environment: CORECAST_TT_LISTEN (host:port), CORECAST_TT_DIR (data/log/pid dir),
-- CORECAST_TT_USER / CORECAST_TT_PASSWORD (the client user), CORECAST_TT_BACKGROUND=1.

local uuid = require('uuid')
local clock = require('clock')

local dir = os.getenv('CORECAST_TT_DIR') or '.'
local background = os.getenv('CORECAST_TT_BACKGROUND') == '1'
box.cfg{
    listen = os.getenv('CORECAST_TT_LISTEN') or '127.0.0.1:3301',
    work_dir = dir,
    background = background,
    pid_file = background and (dir .. '/tarantool.pid') or nil,
    log = background and (dir .. '/tarantool.log') or nil,
}

local user = os.getenv('CORECAST_TT_USER') or 'corecast'
local password = os.getenv('CORECAST_TT_PASSWORD') or 'corecast'

local FUNCS = {
    'corecast_start', 'corecast_join', 'corecast_leave', 'corecast_drop', 'corecast_end',
    'corecast_get', 'corecast_by_router', 'corecast_truncate', 'corecast_ping', 'corecast_mute',
}

box.once('corecast_schema_v1', function()
    local s = box.schema.space.create('calls', {
        format = {
            {name = 'id', type = 'uuid'},
            {name = 'owner', type = 'integer'},
            {name = 'created_at', type = 'unsigned'},
            {name = 'router', type = 'map'},
            {name = 'participants', type = 'array'},
        },
    })
    s:create_index('primary', {parts = {{field = 'id', type = 'uuid'}}})
    box.schema.user.create(user, {password = password, if_not_exists = true})
    box.schema.user.grant(user, 'read,write', 'space', 'calls', {if_not_exists = true})
    for _, f in ipairs(FUNCS) do
        box.schema.func.create(f, {if_not_exists = true})
        box.schema.user.grant(user, 'execute', 'function', f, {if_not_exists = true})
    end
end)

-- Functions added after schema v1 (a store created by an older init.lua gets them here).
box.once('corecast_schema_v2', function()
    box.schema.func.create('corecast_mute', {if_not_exists = true})
    box.schema.user.grant(user, 'execute', 'function', 'corecast_mute', {if_not_exists = true})
end)

local function now_ms()
    return math.floor(clock.time() * 1000)
end

local function late(deadline)
    return deadline ~= nil and deadline > 0 and now_ms() > deadline
end

local function parse_id(s)
    local ok, id = pcall(uuid.fromstr, s)
    if not ok then return nil end
    return id
end

local function participant_map(p)
    return {participant_id = p[1], user_id = p[2], role = p[3], joined_at = p[4] or 0,
            audio_muted = p[5] == true, video_muted = p[6] == true}
end

local function to_map(t)
    local ps = {}
    for i, p in ipairs(t.participants) do
        ps[i] = participant_map(p)
    end
    return {
        id = t.id:str(), owner = t.owner, created_at = t.created_at,
        router = t.router, participants = setmetatable(ps, {__serialize = 'seq'}),
    }
end

function corecast_ping()
    return 'ok'
end

function corecast_start(id_s, owner, created_at, router, deadline)
    if late(deadline) then return 'late' end
    local id = parse_id(id_s)
    if id == nil then return 'bad_id' end
    return box.atomic(function()
        if box.space.calls:get(id) ~= nil then return 'exists' end
        box.space.calls:insert{id, owner, created_at, router, setmetatable({}, {__serialize = 'seq'})}
        return 'ok'
    end)
end

-- same_user_ok = true (WHIP/WHEP legs): the user may already have participants in the call
-- (one leg per published or received stream); the cap still holds. Absent: a native join,
-- one participant per user.
function corecast_join(id_s, pid, user_id, role, cap, deadline, joined_at, same_user_ok)
    if late(deadline) then return 'late' end
    local id = parse_id(id_s)
    if id == nil then return 'not_found' end
    return box.atomic(function()
        local t = box.space.calls:get(id)
        if t == nil then return 'not_found' end
        local ps = t.participants
        -- The cap counts people (distinct users): another leg of a user already in the call is free.
        local users, people, present = {}, 0, false
        for _, p in ipairs(ps) do
            if p[2] == user_id then
                if same_user_ok ~= true then return 'already_joined' end
                present = true
            end
            if not users[p[2]] then users[p[2]] = true; people = people + 1 end
        end
        if not present and people >= cap then return 'full' end
        local np = {}
        for i, p in ipairs(ps) do np[i] = p end
        np[#np + 1] = {pid, user_id, role, joined_at or 0}
        t = box.space.calls:update(id, {{'=', 5, np}})
        return 'ok', to_map(t)
    end)
end

function corecast_leave(id_s, user_id, deadline)
    if late(deadline) then return 'late' end
    local id = parse_id(id_s)
    if id == nil then return 'not_found' end
    return box.atomic(function()
        local t = box.space.calls:get(id)
        if t == nil then return 'not_found' end
        local np, found = {}, nil
        for _, p in ipairs(t.participants) do
            if p[2] == user_id and found == nil then found = p[1] else np[#np + 1] = p end
        end
        if found == nil then return 'not_joined' end
        box.space.calls:update(id, {{'=', 5, setmetatable(np, {__serialize = 'seq'})}})
        return 'ok', found
    end)
end

function corecast_drop(id_s, pid, deadline)
    if late(deadline) then return 'late' end
    local id = parse_id(id_s)
    if id == nil then return 'ok', false end
    return box.atomic(function()
        local t = box.space.calls:get(id)
        if t == nil then return 'ok', false end
        local np, found = {}, false
        for _, p in ipairs(t.participants) do
            if p[1] == pid then found = true else np[#np + 1] = p end
        end
        if found then
            box.space.calls:update(id, {{'=', 5, setmetatable(np, {__serialize = 'seq'})}})
        end
        return 'ok', found
    end)
end

-- Sets a publisher's muted flags (audio, video: booleans, or nil/box.NULL to leave one as it
-- is) if user_id joined as it; returns 'ok' and the participant.
function corecast_mute(id_s, pid, user_id, audio, video, deadline)
    if late(deadline) then return 'late' end
    local id = parse_id(id_s)
    if id == nil then return 'not_found' end
    return box.atomic(function()
        local t = box.space.calls:get(id)
        if t == nil then return 'not_found' end
        local np, found = {}, nil
        for i, p in ipairs(t.participants) do
            if p[1] == pid then
                if p[2] ~= user_id then return 'not_yours' end
                if p[3] ~= 'publisher' then return 'not_publisher' end
                local a = p[5] == true
                local v = p[6] == true
                if type(audio) == 'boolean' then a = audio end
                if type(video) == 'boolean' then v = video end
                found = {p[1], p[2], p[3], p[4] or 0, a, v}
                np[i] = found
            else
                np[i] = p
            end
        end
        if found == nil then return 'no_participant' end
        box.space.calls:update(id, {{'=', 5, setmetatable(np, {__serialize = 'seq'})}})
        return 'ok', participant_map(found)
    end)
end

function corecast_end(id_s, user_id, deadline)
    if late(deadline) then return 'late' end
    local id = parse_id(id_s)
    if id == nil then return 'not_found' end
    return box.atomic(function()
        local t = box.space.calls:get(id)
        if t == nil then return 'not_found' end
        if t.owner ~= user_id then return 'not_owner' end
        box.space.calls:delete(id)
        return 'ok', to_map(t)
    end)
end

function corecast_get(id_s)
    local id = parse_id(id_s)
    if id == nil then return 'not_found' end
    local t = box.space.calls:get(id)
    if t == nil then return 'not_found' end
    return 'ok', to_map(t)
end

function corecast_by_router(router_id)
    local out = {}
    for _, t in box.space.calls:pairs() do
        if t.router.id == router_id then out[#out + 1] = to_map(t) end
    end
    return 'ok', setmetatable(out, {__serialize = 'seq'})
end

function corecast_truncate()
    box.space.calls:truncate()
    return 'ok'
end

local ready = os.getenv('CORECAST_TT_READY_FILE')
if ready ~= nil then
    local f = io.open(ready, 'w')
    if f ~= nil then f:close() end
end
