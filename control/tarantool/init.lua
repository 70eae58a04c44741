-- corecast calls store for Tarantool 2.6+.
--
-- Space `calls {id uuid, owner, created_at, router, participants[]}` where router is
-- {id, address, admin} and each participant is
-- {participant_id, user_id, role, joined_at, audio_muted, video_muted, router} (muted flags
-- absent in records written before corecast_mute existed: read as false; router, the id of
-- the router holding a WHIP/WHEP leg placed on a leaf (cascading), absent for the rest);
-- every change is one
-- stored procedure (atomic: no yield between read and write, wrapped in box.atomic).
-- Each mutating procedure takes a deadline (Unix ms): a request that reaches the server
-- after its client gave up is refused instead of applied late.
--
-- Space `routers {id, region, reg, last_seen, placed, draining, drain_deadline}` is the router
-- registry shared by every calls instance: reg is {address, admin, cores, load, workers} as the router last
-- reported it, last_seen the server's clock (Unix ms) at its last heartbeat, placed the calls
-- placed on it since then, draining the operator's flag, drain_deadline (nil: none) when its
-- calls are to be moved to other routers (Unix ms by this server's clock). Liveness is judged by this server's
-- clock against a time-to-live each caller passes (3x its heartbeat interval). A reserve router
-- (reg.reserve) takes calls only while its region's reserves are in use: space
-- `reserves {region, in_use}` holds that state so every calls instance applies the same
-- hysteresis (see corecast_start_placed).
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

-- The router registry (schema v3): see the header.
box.once('corecast_schema_v3', function()
    local s = box.schema.space.create('routers', {
        if_not_exists = true,
        format = {
            {name = 'id', type = 'string'},
            {name = 'region', type = 'string'},
            {name = 'reg', type = 'map'},
            {name = 'last_seen', type = 'unsigned'},
            {name = 'placed', type = 'unsigned'},
            {name = 'draining', type = 'boolean'},
        },
    })
    s:create_index('primary', {parts = {{field = 'id', type = 'string'}}, if_not_exists = true})
    s:create_index('region', {parts = {{field = 'region', type = 'string'}}, unique = false, if_not_exists = true})
    box.schema.user.grant(user, 'read,write', 'space', 'routers', {if_not_exists = true})
    for _, f in ipairs({'corecast_router_beat', 'corecast_start_placed', 'corecast_router_get',
                        'corecast_router_list', 'corecast_router_drain'}) do
        box.schema.func.create(f, {if_not_exists = true})
        box.schema.user.grant(user, 'execute', 'function', f, {if_not_exists = true})
    end
end)

-- Reserve routers (schema v4): whether each region's reserves are in use.
box.once('corecast_schema_v4', function()
    local s = box.schema.space.create('reserves', {
        if_not_exists = true,
        format = {{name = 'region', type = 'string'}, {name = 'in_use', type = 'boolean'}},
    })
    s:create_index('primary', {parts = {{field = 'region', type = 'string'}}, if_not_exists = true})
    box.schema.user.grant(user, 'read,write', 'space', 'reserves', {if_not_exists = true})
    box.schema.func.create('corecast_reserves_in_use', {if_not_exists = true})
    box.schema.user.grant(user, 'execute', 'function', 'corecast_reserves_in_use', {if_not_exists = true})
end)

-- The dominant speaker (schema v5): corecast_speaker.
box.once('corecast_schema_v5', function()
    box.schema.func.create('corecast_speaker', {if_not_exists = true})
    box.schema.user.grant(user, 'execute', 'function', 'corecast_speaker', {if_not_exists = true})
end)

-- Failover and drain deadlines (schema v6): corecast_move_call, and an index on the calls'
-- router id (routers heart-beat every 500 ms and each heartbeat lists the router's calls).
box.once('corecast_schema_v6', function()
    box.space.calls:create_index('router', {
        parts = {{field = 'router', path = 'id', type = 'string'}}, unique = false, if_not_exists = true,
    })
    box.schema.func.create('corecast_move_call', {if_not_exists = true})
    box.schema.user.grant(user, 'execute', 'function', 'corecast_move_call', {if_not_exists = true})
end)

-- WebRTC legs held on a leaf router (schema v7): corecast_held_on.
box.once('corecast_schema_v7_held_on', function()
    box.schema.func.create('corecast_held_on', {if_not_exists = true})
    box.schema.user.grant(user, 'execute', 'function', 'corecast_held_on', {if_not_exists = true})
end)

-- Drain deadlines in the store (schema v8): the routers' drain_deadline field, so every calls
-- instance's sweeper enforces a deadline whichever instance took the drain.
box.once('corecast_schema_v8', function()
    local f = box.space.routers:format()
    f[7] = {name = 'drain_deadline', type = 'unsigned', is_nullable = true}
    box.space.routers:format(f)
end)

-- Native participants held on a leaf router (schema v9): corecast_set_router.
box.once('corecast_schema_v9_set_router', function()
    box.schema.func.create('corecast_set_router', {if_not_exists = true})
    box.schema.user.grant(user, 'execute', 'function', 'corecast_set_router', {if_not_exists = true})
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
    local router = nil
    if type(p[7]) == 'string' then router = p[7] end
    return {participant_id = p[1], user_id = p[2], role = p[3], joined_at = p[4] or 0,
            audio_muted = p[5] == true, video_muted = p[6] == true, router = router}
end

local function to_map(t)
    local ps = {}
    for i, p in ipairs(t.participants) do
        ps[i] = participant_map(p)
    end
    return {
        id = t.id:str(), owner = t.owner, created_at = t.created_at,
        router = t.router, participants = setmetatable(ps, {__serialize = 'seq'}),
        dominant_speaker = t[6],
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
-- one participant per user. router_id: the router holding the participant when it is not the
-- call's home (a string), else absent.
function corecast_join(id_s, pid, user_id, role, cap, deadline, joined_at, same_user_ok, router_id)
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
        if type(router_id) == 'string' then
            np[#np + 1] = {pid, user_id, role, joined_at or 0, false, false, router_id}
        else
            np[#np + 1] = {pid, user_id, role, joined_at or 0}
        end
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

-- Records the call's dominant speaker (field 6, past the format's five) if it is a
-- participant; returns 'ok' and whether it was recorded.
function corecast_speaker(id_s, pid, deadline)
    if late(deadline) then return 'late' end
    local id = parse_id(id_s)
    if id == nil then return 'ok', false end
    return box.atomic(function()
        local t = box.space.calls:get(id)
        if t == nil then return 'ok', false end
        for _, p in ipairs(t.participants) do
            if p[1] == pid then
                box.space.calls:update(id, {{'=', 6, pid}})
                return 'ok', true
            end
        end
        return 'ok', false
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
                found = {p[1], p[2], p[3], p[4] or 0, a, v, p[7]}
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
    for _, t in box.space.calls.index.router:pairs(router_id) do
        out[#out + 1] = to_map(t)
    end
    return 'ok', setmetatable(out, {__serialize = 'seq'})
end

-- The participants held on router_id while their call's home is another: {call id, participant
-- id} pairs. A scan of every call (the failover sweep calls it when it finds a router dead).
function corecast_held_on(router_id)
    local out = {}
    for _, t in box.space.calls:pairs() do
        if t.router.id ~= router_id then
            for _, p in ipairs(t.participants) do
                if p[7] == router_id then out[#out + 1] = {t.id:str(), p[1]} end
            end
        end
    end
    return 'ok', setmetatable(out, {__serialize = 'seq'})
end

-- Records the router holding participant pid (a string: a leaf; nil: the call's home).
-- Returns 'ok' and whether the participant was found.
function corecast_set_router(id_s, pid, router, deadline)
    if late(deadline) then return 'late' end
    local id = parse_id(id_s)
    if id == nil then return 'ok', false end
    if type(router) ~= 'string' then router = nil end
    return box.atomic(function()
        local t = box.space.calls:get(id)
        if t == nil then return 'ok', false end
        local np, found = {}, false
        for i, p in ipairs(t.participants) do
            if p[1] == pid then
                found = true
                np[i] = {p[1], p[2], p[3], p[4] or 0, p[5] == true, p[6] == true, router}
            else
                np[i] = p
            end
        end
        if not found then return 'ok', false end
        box.space.calls:update(id, {{'=', 5, setmetatable(np, {__serialize = 'seq'})}})
        return 'ok', true
    end)
end

-- The router registry ---------------------------------------------------------------------

local function seq(t)
    return setmetatable(t or {}, {__serialize = 'seq'})
end

local function router_status(r, now, ttl_ms)
    local dl = r.drain_deadline
    if dl == box.NULL then dl = nil end
    local age = now - r.last_seen
    if age < 0 then age = 0 end
    local ws = {}
    for i, w in ipairs(r.reg.workers or {}) do ws[i] = w end
    return {
        id = r.id, region = r.region, address = r.reg.address, admin = r.reg.admin,
        cores = r.reg.cores, load = r.reg.load, workers = seq(ws), reserve = r.reg.reserve == true,
        placed = r.placed, draining = r.draining, last_seen_ms_ago = age, live = age < ttl_ms,
        drain_deadline = dl, drain_due = dl ~= nil and now >= dl,
    }
end

-- A registration or heartbeat: stores what the router reports with this server's clock, resets
-- its placement count, keeps its draining flag and drain deadline. Returns 'ok' and whether it
-- was not live before (new, restarted or expired): one caller alone sees true for one comeback.
function corecast_router_beat(id, region, address, admin, cores, load, workers, ttl_ms, deadline, reserve)
    if late(deadline) then return 'late' end
    local ws = {}
    for i, w in ipairs(workers or {}) do ws[i] = w end
    local reg = {address = address, admin = admin, cores = cores, load = load, workers = seq(ws),
                 reserve = reserve == true}
    return box.atomic(function()
        local now = now_ms()
        local old = box.space.routers:get(id)
        local fresh = old == nil or now - old.last_seen >= ttl_ms
        local draining = old ~= nil and old.draining
        local dl = box.NULL
        if old ~= nil and old.drain_deadline ~= nil then dl = old.drain_deadline end
        box.space.routers:replace{id, region, reg, now, 0, draining, dl}
        return 'ok', fresh
    end)
end

local function score(r)
    local cores = r.reg.cores
    if cores == nil or cores < 1 then cores = 1 end
    local load = r.reg.load or 0
    if load < 0 then load = 0 end
    return load + r.placed * 0.01 / cores
end

local function better(r, sc, best, best_score)
    return best == nil or sc < best_score or (sc == best_score and r.id < best.id)
end

local function reserves_in_use(region)
    local t = box.space.reserves:get(region)
    return t ~= nil and t.in_use
end

-- Starts a call on the least-loaded live, not draining router of `region` (score: load plus
-- 0.01 per call placed since its last heartbeat, per core; ties by id), counting the
-- placement, in one transaction; with no such router, on `fallback` ({id, address, admin}).
-- Reserve routers are candidates only while the region's reserves are in use: they come into
-- use when the regular pool's load (the least-loaded live regular router's score: what the
-- next call would get; none live counts as full) passes `reserve_on`, and go out of use when
-- it falls below `reserve_off` (hysteresis; nil: reserves never used while a regular router
-- is live). Returns 'ok', the chosen router's status (nil: the fallback) and whether the
-- reserves are in use.
function corecast_start_placed(id_s, owner, created_at, region, ttl_ms, fallback, deadline, reserve_on, reserve_off)
    if late(deadline) then return 'late' end
    local id = parse_id(id_s)
    if id == nil then return 'bad_id' end
    return box.atomic(function()
        if box.space.calls:get(id) ~= nil then return 'exists' end
        local now = now_ms()
        local regular, regular_score, reserve, reserve_score = nil, nil, nil, nil
        for _, r in box.space.routers.index.region:pairs(region) do
            if not r.draining and now - r.last_seen < ttl_ms then
                local sc = score(r)
                if r.reg.reserve == true then
                    if better(r, sc, reserve, reserve_score) then reserve, reserve_score = r, sc end
                elseif better(r, sc, regular, regular_score) then
                    regular, regular_score = r, sc
                end
            end
        end
        local pool = regular_score or math.huge
        local was = reserves_in_use(region)
        local in_use = was
        if not was and pool > (reserve_on or math.huge) then in_use = true end
        if was and pool < (reserve_off or math.huge) then in_use = false end
        if regular == nil then in_use = true end
        if in_use ~= was then box.space.reserves:replace{region, in_use} end
        local best = regular
        if in_use and reserve ~= nil and better(reserve, reserve_score, regular, regular_score) then
            best = reserve
        end
        local router = fallback
        local status = nil
        if best ~= nil then
            best = box.space.routers:update(best.id, {{'+', 5, 1}})
            router = {id = best.id, address = best.reg.address, admin = best.reg.admin}
            status = router_status(best, now, ttl_ms)
        end
        box.space.calls:insert{id, owner, created_at, router, seq()}
        return 'ok', status, in_use
    end)
end

function corecast_reserves_in_use(region)
    return 'ok', reserves_in_use(region)
end

function corecast_router_get(id, ttl_ms)
    local r = box.space.routers:get(id)
    if r == nil then return 'not_found' end
    return 'ok', router_status(r, now_ms(), ttl_ms)
end

function corecast_router_list(ttl_ms)
    local now, out = now_ms(), {}
    for _, r in box.space.routers:pairs() do out[#out + 1] = router_status(r, now, ttl_ms) end
    return 'ok', seq(out)
end

-- Sets a router's draining flag (an operator's decision: it outlives heartbeats and restarts)
-- and its drain deadline, `after_ms` from now by this server's clock (nil, and always when
-- undrained: none).
function corecast_router_drain(id, draining, ttl_ms, deadline, after_ms)
    if late(deadline) then return 'late' end
    return box.atomic(function()
        local r = box.space.routers:get(id)
        if r == nil then return 'not_found' end
        local now = now_ms()
        local dl = box.NULL
        if draining == true and after_ms ~= nil then dl = now + after_ms end
        local t = r:totable()
        t[6], t[7] = draining == true, dl
        r = box.space.routers:replace(t)
        return 'ok', router_status(r, now, ttl_ms)
    end)
end

-- Moves a call off router `from_id` (dead, or drained past its deadline) onto the least-loaded
-- live, not draining router of `region` other than it (regular routers before reserves),
-- counting the placement, in one transaction, and only while the call is still on `from_id`:
-- of several calls instances trying at once one moves it. Returns 'ok' with 'moved' (and the
-- new router), 'already' (and the router the call is on now) or 'none' (no router can take it).
function corecast_move_call(id_s, from_id, region, ttl_ms, deadline)
    if late(deadline) then return 'late' end
    local id = parse_id(id_s)
    if id == nil then return 'not_found' end
    return box.atomic(function()
        local t = box.space.calls:get(id)
        if t == nil then return 'not_found' end
        if t.router.id ~= from_id then return 'ok', 'already', t.router end
        local now = now_ms()
        local best, best_score = nil, nil
        for _, r in box.space.routers.index.region:pairs(region) do
            if r.id ~= from_id and not r.draining and now - r.last_seen < ttl_ms then
                local sc = score(r)
                if r.reg.reserve == true then sc = sc + 1e9 end
                if better(r, sc, best, best_score) then best, best_score = r, sc end
            end
        end
        if best == nil then return 'ok', 'none' end
        best = box.space.routers:update(best.id, {{'+', 5, 1}})
        local router = {id = best.id, address = best.reg.address, admin = best.reg.admin}
        box.space.calls:update(id, {{'=', 4, router}})
        return 'ok', 'moved', router
    end)
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
